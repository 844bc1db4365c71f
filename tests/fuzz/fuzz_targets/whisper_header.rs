//! Any bytes as a whisper header: parsing returns a header or a reason, never panics, and a
//! header that parses is safe for slot arithmetic at any timestamp.
#![no_main]

use carbyne::whisper::Header;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(header) = Header::parse(data, data.len() as u64) else {
        return;
    };
    assert_eq!(Header::parse(&header.encode(), data.len() as u64).as_ref(), Ok(&header));
    for a in &header.archives {
        for ts in [0, 1, i64::from(u32::MAX), i64::from(header.max_retention), -1] {
            let aligned = a.align(ts);
            let offset = a.slot_offset(aligned, ts);
            assert!(offset >= u64::from(a.offset) && offset < a.end());
        }
    }
});
