//! Arbitrary bytes into the spec parser: YAML to located tree, the spec walker, the daemon
//! config parser and the Go duration parser. None may panic, hang or blow up memory on any
//! input; every problem must come back as a diagnostic.
//!
//! Run: `cargo +nightly fuzz run spec_parser fuzz/seeds/spec_parser` (from the repository root;
//! the seeds are spec files from the test corpus).

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (spec, diags) = aurelia_spec::load::load_str(text, Path::new("fuzz.yaml"));
    // A spec comes back exactly when there is nothing wrong with the file.
    assert_eq!(spec.is_some(), diags.is_empty(), "{diags:?}");
    for d in &diags {
        assert!(!d.message.is_empty());
        let _ = d.render(Path::new("fuzz.yaml"));
    }
    if let Some(spec) = spec {
        let _ = spec.content_hash();
    }
    let _ = aurelia_spec::config::parse_config(text);
    if let Ok(d) = aurelia_spec::duration::parse(text) {
        // Formatting a parsed duration and parsing it again gives the same value.
        let again = aurelia_spec::duration::parse(&d.to_string());
        assert_eq!(again, Ok(d), "{text:?} -> {d}");
    }
});
