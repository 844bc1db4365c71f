//! Any bytes as a pickle receiver's stream: cut into frames by the splitter, fed in pieces
//! whose size the first byte chooses, and every frame decoded by one reused decoder. Nothing
//! panics, no accepted frame is above the limit, the points counted are the points delivered,
//! and the same stream fed in one piece gives the same frames.
#![no_main]

use carbyne::protocol::pickle::{FrameSplitter, FrameTooLarge, PickleDecoder, PickleLimits};
use libfuzzer_sys::fuzz_target;

/// Small enough that fuzzed length prefixes often fit, so frames reach the decoder.
const FRAME_LEN_MAX: usize = 4096;

/// Every frame (or its rejection) the splitter gives for `stream` fed in `piece_len` pieces.
fn split(stream: &[u8], piece_len: usize) -> Vec<Result<Vec<u8>, FrameTooLarge>> {
    let mut splitter = FrameSplitter::new(FRAME_LEN_MAX);
    let mut frames = Vec::new();
    for piece in stream.chunks(piece_len) {
        splitter.feed(piece, |frame| frames.push(frame.map(<[u8]>::to_vec)));
    }
    assert!(splitter.pending_bytes() <= 4 + FRAME_LEN_MAX);
    frames
}

fuzz_target!(|data: &[u8]| {
    let Some((&piece_len, stream)) = data.split_first() else {
        return;
    };
    let frames = split(stream, usize::from(piece_len) + 1);
    assert_eq!(frames, split(stream, stream.len().max(1)));

    let mut decoder = PickleDecoder::new(PickleLimits::new(FRAME_LEN_MAX));
    // The whole stream as one frame as well, so that inputs without a sensible length prefix
    // still reach the decoder.
    for frame in frames.iter().flatten().map(Vec::as_slice).chain([stream]) {
        assert!(frame.len() <= FRAME_LEN_MAX || frame == stream);
        let mut delivered = 0;
        if let Ok(stats) = decoder.decode(frame, |_, _, _| delivered += 1) {
            assert_eq!(stats.points, delivered);
        }
    }
});
