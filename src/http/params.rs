//! Request parameters as graphite-web reads them: the query string and a form body merged
//! (POST values after GET ones, `get` answering with the last, as Django's QueryDict does),
//! with the leniency Grafana needs: `POST /metrics/find` sends `query=a.b.*` unencoded, so a
//! `%` that starts no valid escape is kept as written.
//!
//! A `multipart/form-data` body is read too ([`Params::parse_multipart`]): a graphite-web
//! frontend with REMOTE_STORE_USE_POST sends its find and render fields that way (urllib3's
//! default for a POST with fields). Only text fields are kept; a part with a `filename` is a
//! file upload, which Django keeps apart from POST, and is skipped.

/// The merged parameters of one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

/// Most parameters one request may carry.
pub const MAX_PAIRS: usize = 10_000;

impl Params {
    /// The query string's pairs, then the form body's.
    pub fn parse(query: Option<&str>, form_body: Option<&[u8]>) -> Params {
        let mut pairs = Vec::new();
        if let Some(q) = query {
            pairs.extend(
                form_urlencoded::parse(q.as_bytes()).take(MAX_PAIRS).map(|(k, v)| (k.into_owned(), v.into_owned())),
            );
        }
        if let Some(body) = form_body {
            let room = MAX_PAIRS.saturating_sub(pairs.len());
            pairs.extend(form_urlencoded::parse(body).take(room).map(|(k, v)| (k.into_owned(), v.into_owned())));
        }
        Params { pairs }
    }

    /// The query string's pairs, then the fields of a `multipart/form-data` body delimited by
    /// `boundary` (RFC 7578, as urllib3 and browsers write it), at most [`MAX_PAIRS`] in all.
    /// Err with the reason when the body is not such a form (Django answers those with a 400).
    pub fn parse_multipart(query: Option<&str>, body: &[u8], boundary: &str) -> Result<Params, String> {
        let mut params = Params::parse(query, None);
        // RFC 2046: 1 to 70 characters.
        if boundary.is_empty() || boundary.len() > 70 {
            return Err(format!("invalid multipart boundary of {} bytes", boundary.len()));
        }
        let delimiter = [b"--", boundary.as_bytes()].concat();
        let mut rest = match find(body, &delimiter) {
            Some(at) => &body[at + delimiter.len()..],
            None => return Err("multipart body without its boundary".into()),
        };
        loop {
            if rest.starts_with(b"--") {
                return Ok(params);
            }
            rest = strip_line_break(rest).ok_or("multipart boundary not followed by a line break")?;
            let (head, after) = split_headers(rest).ok_or("multipart part without the end of its headers")?;
            let end =
                find(after, &[b"\r\n", &delimiter[..]].concat()).ok_or("multipart part without a closing boundary")?;
            if params.pairs.len() >= MAX_PAIRS {
                return Ok(params);
            }
            if let Some(name) = form_field_name(head) {
                params.pairs.push((name, String::from_utf8_lossy(&after[..end]).into_owned()));
            }
            rest = &after[end + 2 + delimiter.len()..];
        }
    }

    /// The last value of `key` (Django's `QueryDict.get`).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, in order (`getlist`).
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.pairs.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect()
    }

    /// Whether `key` is present at all (graphite-web's `'noNullPoints' in queryParams`).
    pub fn has(&self, key: &str) -> bool {
        self.pairs.iter().any(|(k, _)| k == key)
    }

    /// An integer flag (`leavesOnly=1`), `default` when absent; Err when not an integer.
    pub fn int(&self, key: &str, default: i64) -> Result<i64, String> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.trim().parse().map_err(|_| format!("Invalid int value {v:?} for param {key}")),
        }
    }

    /// Pairs whose key starts with `prefix` (`template[...]`).
    pub fn with_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.pairs.iter().filter(move |(k, _)| k.starts_with(prefix)).map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// The boundary of a `multipart/form-data` content type (quoted or not); None for any other.
pub fn multipart_boundary(content_type: &str) -> Option<&str> {
    let mut parts = content_type.split(';');
    if !parts.next()?.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    parts.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case("boundary").then(|| v.trim().trim_matches('"'))
    })
}

/// Where `needle` first occurs in `hay` (linear time whatever the input: memchr's two-way
/// search, so that a hostile body cannot make the scan quadratic).
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

/// `b` without its leading CRLF (or bare LF).
fn strip_line_break(b: &[u8]) -> Option<&[u8]> {
    b.strip_prefix(b"\r\n").or_else(|| b.strip_prefix(b"\n"))
}

/// A part's headers and what follows the blank line after them.
fn split_headers(b: &[u8]) -> Option<(&[u8], &[u8])> {
    if let Some(after) = strip_line_break(b) {
        return Some((&[], after)); // no headers at all
    }
    let at = find(b, b"\r\n\r\n")?;
    Some((&b[..at], &b[at + 4..]))
}

/// The field name of a part whose headers say `Content-Disposition: form-data; name="..."`
/// without a filename; quoted names are unescaped as Django does (`\\` and `\"`).
fn form_field_name(head: &[u8]) -> Option<String> {
    let head = String::from_utf8_lossy(head);
    let disposition = head.split("\r\n").find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.trim().eq_ignore_ascii_case("content-disposition").then(|| v.trim().to_string())
    })?;
    let mut params = disposition.split(';');
    if !params.next()?.trim().eq_ignore_ascii_case("form-data") {
        return None;
    }
    let mut name = None;
    for p in params {
        let Some((k, v)) = p.split_once('=') else { continue };
        match k.trim().to_ascii_lowercase().as_str() {
            "filename" | "filename*" => return None,
            "name" => {
                let v = v.trim();
                let unquoted = match v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
                    Some(inner) => inner.replace("\\\\", "\\").replace("\\\"", "\""),
                    None => v.to_string(),
                };
                name = Some(unquoted);
            }
            _ => {}
        }
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_and_post_merge_as_django() {
        let p = Params::parse(Some("target=a.b&from=-1h&target=c"), Some(b"target=d&from=-2h"));
        assert_eq!(p.all("target"), ["a.b", "c", "d"]);
        assert_eq!(p.get("from"), Some("-2h"));
        assert!(p.has("from") && !p.has("until"));
    }

    #[test]
    fn grafana_raw_find_bodies_and_encodings() {
        assert_eq!(Params::parse(None, Some(b"query=a.b.*")).get("query"), Some("a.b.*"));
        assert_eq!(Params::parse(None, Some(b"query=*foo*")).get("query"), Some("*foo*"));
        assert_eq!(Params::parse(None, Some(b"query={x,y}.%zz")).get("query"), Some("{x,y}.%zz"));
        assert_eq!(
            Params::parse(Some("target=sumSeries(a.%2A)%7Cscale(2)"), None).get("target"),
            Some("sumSeries(a.*)|scale(2)")
        );
        assert_eq!(Params::parse(Some("x=1&leavesOnly=1"), None).int("leavesOnly", 0), Ok(1));
        assert!(Params::parse(Some("leavesOnly=yes"), None).int("leavesOnly", 0).is_err());
    }

    #[test]
    fn the_number_of_pairs_is_bounded() {
        let body = "a=1&".repeat(MAX_PAIRS + 50);
        assert_eq!(Params::parse(None, Some(body.as_bytes())).all("a").len(), MAX_PAIRS);
    }

    #[test]
    fn multipart_forms_as_urllib3_writes_them() {
        // urllib3 1.26's encode_multipart_formdata([("local", "1"), ("target", 'a.b"c'), ("from", 123)]).
        let b = "88f4ea094e31cef877276dfe66d4ba7e";
        let body = format!(
            "--{b}\r\nContent-Disposition: form-data; name=\"local\"\r\n\r\n1\r\n--{b}\r\nContent-Disposition: \
             form-data; name=\"target\"\r\n\r\na.b\"c\r\n--{b}\r\nContent-Disposition: form-data; \
             name=\"from\"\r\n\r\n123\r\n--{b}--\r\n"
        );
        assert_eq!(multipart_boundary(&format!("multipart/form-data; boundary={b}")), Some(b));
        assert_eq!(multipart_boundary("Multipart/Form-Data; charset=utf-8; boundary=\"x y\""), Some("x y"));
        assert_eq!(multipart_boundary("application/x-www-form-urlencoded"), None);
        let p = Params::parse_multipart(Some("format=pickle&target=q"), body.as_bytes(), b).unwrap();
        assert_eq!(p.all("target"), ["q", "a.b\"c"], "query string first, then the body");
        assert_eq!((p.get("local"), p.get("from"), p.get("format")), (Some("1"), Some("123"), Some("pickle")));
        // Every split of the same form is refused or read the same: never a panic.
        for cut in 0..body.len() {
            if let Ok(p) = Params::parse_multipart(None, &body.as_bytes()[..cut], b) {
                assert!(p.pairs.len() <= 3);
            }
        }
    }

    #[test]
    fn multipart_edge_cases() {
        let form = |parts: &str| Params::parse_multipart(None, parts.as_bytes(), "X");
        // A file part is not a field; a quoted name is unescaped; a value may hold CRLF.
        let p = form(
            "--X\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\n\r\nfile\r\n--X\r\n\
             content-disposition: form-data; name=\"q\\\"x\"\r\nContent-Type: text/plain\r\n\r\nline1\r\nline2\r\n--X--",
        )
        .unwrap();
        assert_eq!(p.pairs, [("q\"x".to_string(), "line1\r\nline2".to_string())]);
        assert!(form("no boundary here").is_err());
        assert!(form("--X\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nunterminated").is_err());
        assert!(Params::parse_multipart(None, b"--\r\n", "").is_err(), "an empty boundary");
        let many: String = (0..MAX_PAIRS + 5)
            .map(|i| format!("--X\r\nContent-Disposition: form-data; name=\"k\"\r\n\r\n{i}\r\n"))
            .collect();
        assert_eq!(form(&format!("{many}--X--")).unwrap().all("k").len(), MAX_PAIRS);
    }
}
