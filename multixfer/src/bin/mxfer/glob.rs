//! curl's URL globbing: `[1-100]`, `[001-100]`, `[a-z]`, `[1-100:5]` and `{one,two}`,
//! expanded left to right like curl does.

/// One piece of a pattern: fixed text or a set of alternatives.
enum Piece {
    Text(String),
    Set(Vec<String>),
}

/// Every URL a pattern names, in curl's order (the last set varies fastest).
pub(crate) fn expand(pattern: &str) -> Result<Vec<String>, String> {
    let pieces = parse(pattern)?;
    let mut out = vec![String::new()];
    for piece in pieces {
        match piece {
            Piece::Text(t) => out.iter_mut().for_each(|u| u.push_str(&t)),
            Piece::Set(alts) => {
                if out.len().saturating_mul(alts.len()) > 10_000_000 {
                    return Err(format!("{pattern:?} names more than ten million URLs"));
                }
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
                    body.split(',').map(str::to_string).collect()
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
fn range(body: &str) -> Option<Vec<String>> {
    let (span, step) = match body.split_once(':') {
        Some((s, st)) => (s, st.parse::<u64>().ok().filter(|&s| s > 0)?),
        None => (body, 1),
    };
    let (lo, hi) = span.split_once('-')?;
    if let (Ok(a), Ok(b)) = (lo.parse::<u64>(), hi.parse::<u64>()) {
        let width = if lo.starts_with('0') && lo.len() > 1 { lo.len() } else { 0 };
        return Some((a..=b).step_by(step as usize).map(|n| format!("{n:0width$}")).collect());
    }
    let (a, b) = (single_char(lo)?, single_char(hi)?);
    Some((a..=b).step_by(step as usize).map(String::from).collect())
}

fn single_char(s: &str) -> Option<char> {
    let mut it = s.chars();
    let c = it.next().filter(char::is_ascii_alphabetic)?;
    it.next().is_none().then_some(c)
}

#[cfg(test)]
mod tests {
    use super::expand;

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
    }
}
