//! Any bytes as a whisper file: open, fetch, update_many and update return values or typed
//! errors, never panic, and never write outside the archives the header declares.
#![no_main]

use carbyne::whisper::{Whisper, WriteOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else { return };
    let path = dir.path().join("f.wsp");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let Ok(mut file) = Whisper::open(&path, WriteOptions::default()) else {
        return;
    };
    let now = 1_700_000_000;
    let _ = file.fetch(now - 3600, None, now, None);
    let _ = file.fetch(0, Some(now), now, Some("1m"));
    let _ = file.update_many(&[(now, 1.0), (now - 61, 2.0), (now - 86400 * 400, 3.0)], now);
    let _ = file.update(4.0, Some(now - 10), now);
    let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    assert_eq!(len, data.len() as u64, "writes stay inside the file");
});
