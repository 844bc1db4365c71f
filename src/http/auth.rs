//! HTTP basic auth against an htpasswd file, with the hash formats nginx's `auth_basic_user_file`
//! accepts: bcrypt (`$2y$`, `$2a$`, `$2b$`), Apache's MD5 (`$apr1$`) and `{SHA}` (base64 of
//! SHA-1). Other entries (DES crypt, plain text) are refused when the file is loaded, naming
//! the line, rather than never matching in silence.

use std::path::Path;

use base64::Engine as _;
use md5::{Digest as _, Md5};
use sha1::Sha1;

/// The users of one htpasswd file.
#[derive(Debug, Clone)]
pub struct Htpasswd {
    users: Vec<(String, Hash)>,
}

#[derive(Debug, Clone)]
enum Hash {
    Bcrypt(String),
    Apr1 { salt: String, full: String },
    Sha1(Vec<u8>),
}

impl Htpasswd {
    /// Reads `path`: `user:hash` per line, `#` comments and blank lines skipped.
    pub fn load(path: &Path) -> Result<Htpasswd, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Htpasswd::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses the text of an htpasswd file.
    pub fn parse(text: &str) -> Result<Htpasswd, String> {
        let mut users = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (user, hash) = line.split_once(':').ok_or_else(|| format!("line {}: expected user:hash", n + 1))?;
            let hash = if hash.starts_with("$2y$") || hash.starts_with("$2a$") || hash.starts_with("$2b$") {
                Hash::Bcrypt(hash.to_string())
            } else if let Some(rest) = hash.strip_prefix("$apr1$") {
                let salt = rest.split('$').next().unwrap_or("").to_string();
                Hash::Apr1 { salt, full: hash.to_string() }
            } else if let Some(b64) = hash.strip_prefix("{SHA}") {
                let digest = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|_| format!("line {}: {{SHA}} hash is not base64", n + 1))?;
                Hash::Sha1(digest)
            } else {
                return Err(format!(
                    "line {}: unsupported hash for user {user:?} (use bcrypt, $apr1$ or {{SHA}}: htpasswd -B)",
                    n + 1
                ));
            };
            users.push((user.to_string(), hash));
        }
        Ok(Htpasswd { users })
    }

    /// Whether an `Authorization` header value (`Basic <base64 user:password>`) names a user
    /// whose password matches.
    pub fn check_header(&self, header: Option<&str>) -> bool {
        let Some(b64) = header.and_then(|h| h.strip_prefix("Basic ").or_else(|| h.strip_prefix("basic "))) else {
            return false;
        };
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) else { return false };
        let Ok(text) = String::from_utf8(decoded) else { return false };
        let Some((user, password)) = text.split_once(':') else { return false };
        self.check(user, password)
    }

    /// Whether `user` exists and `password` is theirs.
    pub fn check(&self, user: &str, password: &str) -> bool {
        let Some((_, hash)) = self.users.iter().find(|(u, _)| u == user) else { return false };
        match hash {
            Hash::Bcrypt(h) => bcrypt::verify(password, h).unwrap_or(false),
            Hash::Apr1 { salt, full } => same(apr1(password.as_bytes(), salt.as_bytes()).as_bytes(), full.as_bytes()),
            Hash::Sha1(digest) => same(&Sha1::digest(password.as_bytes()), digest),
        }
    }
}

/// Compares without stopping at the first difference (no timing hint on how much matched).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Apache's MD5-based crypt (`$apr1$salt$hash`), the algorithm of FreeBSD's MD5 crypt with
/// the `$apr1$` magic.
fn apr1(password: &[u8], salt: &[u8]) -> String {
    let salt = &salt[..salt.len().min(8)];
    let magic = b"$apr1$";
    let alternate = Md5::new().chain_update(password).chain_update(salt).chain_update(password).finalize();
    let mut ctx = Md5::new().chain_update(password).chain_update(magic).chain_update(salt);
    let mut left = password.len();
    while left > 0 {
        let n = left.min(16);
        ctx.update(&alternate[..n]);
        left -= n;
    }
    let mut i = password.len();
    while i > 0 {
        if i & 1 == 1 {
            ctx.update([0u8]);
        } else {
            ctx.update(&password[..1]);
        }
        i >>= 1;
    }
    let mut digest = ctx.finalize();
    for round in 0..1000 {
        let mut c = Md5::new();
        if round & 1 == 1 {
            c.update(password);
        } else {
            c.update(digest);
        }
        if round % 3 != 0 {
            c.update(salt);
        }
        if round % 7 != 0 {
            c.update(password);
        }
        if round & 1 == 1 {
            c.update(digest);
        } else {
            c.update(password);
        }
        digest = c.finalize();
    }
    let d = digest;
    let mut out = format!("$apr1${}$", String::from_utf8_lossy(salt));
    for (a, b, c) in [(0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)] {
        to64(&mut out, (u32::from(d[a]) << 16) | (u32::from(d[b]) << 8) | u32::from(d[c]), 4);
    }
    to64(&mut out, u32::from(d[11]), 2);
    out
}

/// `n` characters of crypt's base-64 alphabet, least significant six bits first.
fn to64(out: &mut String, mut v: u32, n: usize) {
    const ALPHABET: &[u8] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    for _ in 0..n {
        out.push(char::from(ALPHABET[(v & 0x3f) as usize]));
        v >>= 6;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apr1_matches_openssl() {
        // `openssl passwd -apr1 -salt abcdefgh secret` and a long, non-ASCII password.
        assert_eq!(apr1(b"secret", b"abcdefgh"), "$apr1$abcdefgh$h9FWgUz3n9YxylKLlR5SQ/");
        assert_eq!(
            apr1("pässword long enough for two md5 blocks!".as_bytes(), b"Xx1"),
            "$apr1$Xx1$8R.SGsuwDuNnGqdFHuiFD."
        );
    }

    #[test]
    fn every_supported_format_checks_and_others_are_refused() {
        let bcrypt_hash = bcrypt::hash("pw3", 4).unwrap().replacen("$2b$", "$2y$", 1);
        let file = format!(
            "# users\nann:$apr1$abcdefgh$h9FWgUz3n9YxylKLlR5SQ/\nbob:{{SHA}}5en6G6MezRroT3XKqkdPOmY/BfQ=\ncid:{bcrypt_hash}\n"
        );
        let h = Htpasswd::parse(&file).unwrap();
        assert!(h.check("ann", "secret") && !h.check("ann", "Secret"));
        assert!(h.check("bob", "secret") && !h.check("bob", "secret "));
        assert!(h.check("cid", "pw3") && !h.check("cid", "pw4"));
        assert!(!h.check("dan", "secret"));
        let header = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("bob:secret"));
        assert!(h.check_header(Some(&header)));
        assert!(!h.check_header(Some("Basic !!!")) && !h.check_header(Some("Bearer x")) && !h.check_header(None));
        assert!(Htpasswd::parse("eve:abJnggxhB/yWI").unwrap_err().contains("line 1"));
        assert!(Htpasswd::parse("no colon").is_err());
    }
}
