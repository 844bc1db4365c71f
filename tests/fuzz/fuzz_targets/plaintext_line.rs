//! Any bytes as a carbon plaintext stream: split into lines at a fuzz-chosen read boundary,
//! parsed, and the names validated. Nothing panics, splitting in two reads gives the same lines
//! as one read, and every accepted name's path stays inside the data directory.
#![no_main]

use std::path::{Component, PathBuf};

use carbyne::protocol::{parse_line, validate, LineSplitter, LineTooLong, TagFileNames};
use libfuzzer_sys::fuzz_target;

/// Every line (or `None` for an over-long one) the splitter gives for `parts`, then what
/// `finish` reports.
fn split(max: usize, parts: &[&[u8]]) -> (Vec<Option<Vec<u8>>>, Option<usize>) {
    let mut splitter = LineSplitter::new(max);
    let mut lines = Vec::new();
    for part in parts {
        splitter.feed(part, |line: Result<&[u8], LineTooLong>| lines.push(line.ok().map(<[u8]>::to_vec)));
    }
    (lines, splitter.finish().map(|incomplete| incomplete.bytes))
}

fn check_name(name: &[u8]) {
    let Ok(valid) = validate(name) else { return };
    let mut path = PathBuf::new();
    for files in [TagFileNames::Hashed, TagFileNames::Readable] {
        if valid.write_relative_path(files, &mut path).is_err() {
            continue;
        }
        assert!(path.is_relative(), "{path:?}");
        assert!(path.components().all(|c| matches!(c, Component::Normal(_))), "{path:?}");
        assert!(!path.to_string_lossy().contains('\0'), "{path:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let [limit, at, input @ ..] = data else { return };
    // The first byte picks the line limit, the second where the stream is cut in two reads.
    let max = usize::from(*limit) + 1;
    let cut = input.len() * usize::from(*at) / 255;
    let (lines, incomplete) = split(max, &[&input[..cut], &input[cut..]]);
    assert_eq!((lines.clone(), incomplete), split(max, &[input]));
    for line in lines.iter().flatten() {
        assert!(line.len() <= max);
        if let Ok(point) = parse_line(line, 1_700_000_000, 60) {
            assert!(!point.value.is_nan());
            assert_eq!(point.timestamp.rem_euclid(60), 0);
            check_name(point.name);
        }
        check_name(line);
    }
});
