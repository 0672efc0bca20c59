//! curl's URL globbing, as the curl tool does it (`mxfer` uses it for its URL arguments):
//! `[1-100]`, `[001-100]` (zero-padded), `[a-z]`, `[1-100:5]` (a step) and `{one,two}`,
//! expanded left to right, the last set varying fastest. A backslash makes the next character
//! literal; `[` around an IPv6 address is the address.
//!
//! ```
//! let urls = multixfer::glob::expand("http://h/{a,b}[1-2]").unwrap();
//! assert_eq!(urls, ["http://h/a1", "http://h/a2", "http://h/b1", "http://h/b2"]);
//! assert!(multixfer::glob::expand("f[1-99999999999]").is_err());
//! ```

/// The most URLs one pattern may name. Every count is checked before anything is built, so a
/// pattern such as `[1-99999999999]` is refused at once rather than exhausting memory.
pub const MAX_URLS: u64 = 10_000_000;

/// The most bytes of URLs one pattern may expand to (1 GiB): long literal text multiplied by a
/// big range is refused however few URLs it names.
pub const MAX_BYTES: u64 = 1 << 30;

/// One piece of a pattern: fixed text or a set of alternatives.
enum Piece {
    Text(String),
    Set(Set),
}

/// A set of alternatives, not yet built.
enum Set {
    List(Vec<String>),
    Numbers { lo: u64, hi: u64, step: u64, width: usize },
    Letters { lo: char, hi: char, step: u64 },
}

impl Set {
    fn len(&self) -> u64 {
        match self {
            Set::List(l) => l.len() as u64,
            Set::Numbers { lo, hi, step, .. } => {
                if hi < lo {
                    0
                } else {
                    ((hi - lo) / step).saturating_add(1)
                }
            }
            Set::Letters { lo, hi, step } => {
                let (lo, hi) = (u64::from(*lo), u64::from(*hi));
                if hi < lo {
                    0
                } else {
                    ((hi - lo) / step).saturating_add(1)
                }
            }
        }
    }

    /// The longest alternative, in bytes.
    fn widest(&self) -> u64 {
        match self {
            Set::List(l) => l.iter().map(String::len).max().unwrap_or(0) as u64,
            Set::Numbers { hi, width, .. } => (hi.to_string().len()).max(*width) as u64,
            Set::Letters { .. } => 1,
        }
    }

    fn items(&self) -> Vec<String> {
        match self {
            Set::List(l) => l.clone(),
            Set::Numbers { lo, hi, step, width } => (*lo..=*hi)
                .step_by(*step as usize)
                .map(|n| format!("{n:0width$}", width = *width))
                .collect(),
            Set::Letters { lo, hi, step } => {
                (*lo..=*hi).step_by(*step as usize).map(String::from).collect()
            }
        }
    }
}

/// How many URLs a pattern names, without building them (saturating at `u64::MAX`); an error
/// for a malformed range.
pub fn count(pattern: &str) -> Result<u64, String> {
    Ok(total(&parse(pattern)?))
}

fn total(pieces: &[Piece]) -> u64 {
    pieces.iter().fold(1u64, |n, piece| match piece {
        Piece::Set(set) => n.saturating_mul(set.len()),
        Piece::Text(_) => n,
    })
}

/// Every URL a pattern names, in curl's order (the last set varies fastest); an error for a
/// malformed range or more than [`MAX_URLS`] URLs.
pub fn expand(pattern: &str) -> Result<Vec<String>, String> {
    let pieces = parse(pattern)?;
    let widest: u64 = pieces
        .iter()
        .map(|p| match p {
            Piece::Text(t) => t.len() as u64,
            Piece::Set(set) => set.widest(),
        })
        .sum();
    match total(&pieces) {
        n if n > MAX_URLS => return Err(format!("{pattern:?} names more than {MAX_URLS} URLs")),
        n if n.saturating_mul(widest) > MAX_BYTES => {
            return Err(format!("{pattern:?} expands to more than {MAX_BYTES} bytes"))
        }
        // An empty set makes the whole product empty: no set is built, however large the
        // others (`[1-99999999999][3-1]` once built ten billion strings to multiply by none).
        0 => return Ok(Vec::new()),
        _ => {}
    }
    let mut out = vec![String::new()];
    for piece in pieces {
        match piece {
            Piece::Text(t) => out.iter_mut().for_each(|u| u.push_str(&t)),
            Piece::Set(set) => {
                let alts = set.items();
                out =
                    out.iter().flat_map(|u| alts.iter().map(move |a| format!("{u}{a}"))).collect();
            }
        }
    }
    Ok(out)
}

fn parse(pattern: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => text.extend(chars.next()),
            '[' | '{' => {
                let close = if c == '[' { ']' } else { '}' };
                let body: String = chars.by_ref().take_while(|&d| d != close).collect();
                // An IPv6 literal in brackets is an address, not a range.
                if c == '[' && body.contains(':') && !body.contains('-') {
                    text.push('[');
                    text.push_str(&body);
                    text.push(']');
                    continue;
                }
                pieces.push(Piece::Text(std::mem::take(&mut text)));
                pieces.push(Piece::Set(if c == '{' {
                    Set::List(body.split(',').map(str::to_string).collect())
                } else {
                    range(&body).ok_or_else(|| format!("bad range [{body}] in {pattern:?}"))?
                }));
            }
            _ => text.push(c),
        }
    }
    pieces.push(Piece::Text(text));
    Ok(pieces)
}

/// `1-10`, `01-10` (zero-padded to the first bound's width), `a-z`, with an optional `:step`.
fn range(body: &str) -> Option<Set> {
    let (span, step) = match body.split_once(':') {
        Some((s, st)) => {
            (s, st.parse::<u64>().ok().filter(|&s| s > 0 && s <= u64::from(u32::MAX))?)
        }
        None => (body, 1),
    };
    let (lo, hi) = span.split_once('-')?;
    if let (Ok(a), Ok(b)) = (lo.parse::<u64>(), hi.parse::<u64>()) {
        let width = if lo.starts_with('0') && lo.len() > 1 { lo.len() } else { 0 };
        // A padding width past any number's digits is a typo, not a request for megabytes.
        if width > 20 {
            return None;
        }
        return Some(Set::Numbers { lo: a, hi: b, step, width });
    }
    let (a, b) = (single_char(lo)?, single_char(hi)?);
    Some(Set::Letters { lo: a, hi: b, step })
}

fn single_char(s: &str) -> Option<char> {
    let mut it = s.chars();
    let c = it.next().filter(char::is_ascii_alphabetic)?;
    it.next().is_none().then_some(c)
}

#[cfg(test)]
mod tests {
    use super::{count, expand};

    #[test]
    fn ranges_lists_and_literals() {
        assert_eq!(
            expand("http://h/f[1-3]").unwrap(),
            ["http://h/f1", "http://h/f2", "http://h/f3"]
        );
        assert_eq!(expand("f[08-10]").unwrap(), ["f08", "f09", "f10"]);
        assert_eq!(expand("[a-c]{x,y}").unwrap(), ["ax", "ay", "bx", "by", "cx", "cy"]);
        assert_eq!(expand("f[1-10:4]").unwrap(), ["f1", "f5", "f9"]);
        assert_eq!(expand("http://[::1]:80/a").unwrap(), ["http://[::1]:80/a"]);
        assert_eq!(expand("f[1-10000]").unwrap().len(), 10_000);
        assert!(expand("f[1-x]").is_err());
        assert_eq!(expand("f[3-1]").unwrap(), Vec::<String>::new());
    }

    /// These once built every URL (or the whole range) before counting: memory ran out.
    #[test]
    fn huge_patterns_are_refused_before_anything_is_built() {
        for p in [
            "f[1-99999999999]",
            "f[0-18446744073709551615]",
            "[1-10000][1-10000]",
            "[a-z][a-z][a-z][a-z][a-z][a-z]",
        ] {
            assert!(expand(p).is_err(), "{p}");
        }
        assert!(expand("f[001-3:4294967296]").is_err(), "absurd step");
        assert!(expand(&format!("f[{}1-2]", "0".repeat(30))).is_err(), "absurd padding");
        let long = format!("{}[1-10000000]", "x".repeat(200));
        assert!(expand(&long).is_err(), "two gigabytes of URLs");
        // Found by the fuzzer: an empty set beside a huge one built the huge one first.
        assert_eq!(expand("f[1-99999999999][3-1]").unwrap(), Vec::<String>::new());
        assert_eq!(count("f[1-99999999999][3-1]").unwrap(), 0);
    }
}
