//! The check: every file the server has must be in some worker's output, byte for byte; no
//! record may be wrong. A torn last record is allowed only in the output of the worker that
//! was killed mid-write.

use std::collections::HashSet;
use std::path::Path;

use crate::content;

/// What the outputs hold.
#[derive(Debug, Default)]
pub(crate) struct Checked {
    /// Distinct files found intact.
    pub(crate) files: usize,
    /// Records read, duplicates included (a requeued job's files are written twice).
    pub(crate) records: usize,
    /// Bytes in those records.
    pub(crate) bytes: u64,
    /// Problems found; empty when all is well.
    pub(crate) problems: Vec<String>,
}

pub(crate) fn outputs(files: &[(std::path::PathBuf, bool)], urls: usize) -> Checked {
    let mut c = Checked::default();
    let mut seen = HashSet::new();
    for (path, killed) in files {
        read(path, *killed, &mut c, &mut seen);
    }
    c.files = seen.len();
    for i in (0..urls).filter(|&i| content::exists(i)) {
        if !seen.contains(&i) {
            c.problems.push(format!("file {i} is in no output"));
        }
    }
    if let Some(i) = seen.iter().find(|&&i| !content::exists(i)) {
        c.problems.push(format!("file {i} does not exist, yet an output has it"));
    }
    c
}

fn read(path: &Path, killed: bool, c: &mut Checked, seen: &mut HashSet<usize>) {
    let data = match std::fs::read(path) {
        Ok(d) => d,
        Err(e) => return c.problems.push(format!("{}: {e}", path.display())),
    };
    let mut rest = &data[..];
    while !rest.is_empty() {
        let torn = |c: &mut Checked, why: &str| {
            if !killed {
                c.problems.push(format!("{}: {why}", path.display()));
            }
        };
        let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
            return torn(c, "a record head without its end");
        };
        let head = String::from_utf8_lossy(&rest[..nl]).into_owned();
        let Some((url, len)) = head.split_once('\t') else {
            return c.problems.push(format!("{}: bad record head {head:?}", path.display()));
        };
        let Ok(len) = len.parse::<usize>() else {
            return c.problems.push(format!("{}: bad length in {head:?}", path.display()));
        };
        let body_start = nl + 1;
        if rest.len() < body_start + len + 1 {
            return torn(c, "a record cut short");
        }
        let body = &rest[body_start..body_start + len];
        let path_part = url.find("/f/").map(|p| &url[p..]).unwrap_or("");
        match content::index_of(path_part) {
            Some(i) if content::exists(i) && body == content::body(i).as_slice() => {
                seen.insert(i);
                c.records += 1;
                c.bytes += len as u64;
            }
            _ => c.problems.push(format!("{}: wrong content for {url}", path.display())),
        }
        if rest[body_start + len] != b'\n' {
            return c.problems.push(format!("{}: record for {url} not terminated", path.display()));
        }
        rest = &rest[body_start + len + 1..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(i: usize, body: &[u8]) -> Vec<u8> {
        let mut r = format!("http://h/f/{i}\t{}\n", body.len()).into_bytes();
        r.extend_from_slice(body);
        r.push(b'\n');
        r
    }

    #[test]
    fn finds_missing_wrong_and_torn_records() {
        let dir = std::env::temp_dir().join(format!("farm-check-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b) = (dir.join("a"), dir.join("b"));
        let mut good: Vec<u8> = (0..3).flat_map(|i| record(i, &content::body(i))).collect();
        std::fs::write(&a, &good).unwrap();
        assert!(outputs(&[(a.clone(), false)], 3).problems.is_empty());
        assert_eq!(outputs(&[(a.clone(), false)], 4).problems.len(), 1, "file 3 is missing");
        // A torn tail is a problem unless its writer was killed.
        good.extend_from_slice(&record(3, &content::body(3))[..20]);
        std::fs::write(&b, &good).unwrap();
        assert_eq!(outputs(&[(b.clone(), false)], 3).problems.len(), 1);
        assert!(outputs(&[(b.clone(), true)], 3).problems.is_empty());
        // One flipped byte is found.
        let mut bad = record(0, &content::body(0));
        let last = bad.len() - 2;
        bad[last] ^= 1;
        std::fs::write(&a, &bad).unwrap();
        assert!(outputs(&[(a, false)], 1).problems.iter().any(|p| p.contains("wrong content")));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
