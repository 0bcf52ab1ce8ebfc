//! Signed notes, checkpoints and cosignature lines from arbitrary bytes: parsing never panics,
//! and whatever parses re-encodes to exactly the input.
#![no_main]

use atomicity_witness::note::{Checkpoint, Note, NoteSignature};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(note) = Note::parse(data) {
        assert_eq!(note.to_text().as_bytes(), data);
        if let Ok(cp) = Checkpoint::from_text(&note.text) {
            assert_eq!(cp.to_text().ok().as_deref(), Some(note.text.as_str()));
        }
    }
    if let Ok(line) = std::str::from_utf8(data)
        && let Ok(sig) = NoteSignature::parse_line(line)
    {
        let _ = sig.to_line();
    }
});
