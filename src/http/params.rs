//! Request parameters as graphite-web reads them: the query string and a form body merged
//! (POST values after GET ones, `get` answering with the last, as Django's QueryDict does),
//! with the leniency Grafana needs: `POST /metrics/find` sends `query=a.b.*` unencoded, so a
//! `%` that starts no valid escape is kept as written.

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
}
