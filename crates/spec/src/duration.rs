//! Go-syntax durations (`300ms`, `1m30s`, `1.5h`, `-2s`), ported from Go's `time.ParseDuration`
//! and `Duration.String`.
//!
//! The seed fixes Go's syntax, and users copy values from Go programs and docs, so the parser
//! accepts exactly what Go accepts (`.5s`, `5.s`, `+5s`, both micro signs, a bare `0`) and
//! rejects what Go rejects (`1d`, `5 s`, `90`), with Go's error wording. No crate matched Go
//! on every case (see shared/docs/crates.md), so this is a small, property-tested port.

use std::fmt;

/// A signed duration in nanoseconds, as Go's `time.Duration`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct GoDuration(pub i64);

impl GoDuration {
    pub const ZERO: GoDuration = GoDuration(0);

    pub const fn from_secs(s: i64) -> GoDuration {
        GoDuration(s * 1_000_000_000)
    }

    pub const fn from_millis(ms: i64) -> GoDuration {
        GoDuration(ms * 1_000_000)
    }

    pub fn nanos(self) -> i64 {
        self.0
    }

    /// The duration as a std `Duration`; negative values clamp to zero.
    pub fn to_std(self) -> std::time::Duration {
        std::time::Duration::from_nanos(self.0.max(0) as u64)
    }
}

/// Why a duration did not parse. The message follows Go's wording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurationError(pub String);

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DurationError {}

const NS: u64 = 1;
const US: u64 = 1_000 * NS;
const MS: u64 = 1_000 * US;
const SEC: u64 = 1_000 * MS;
const MIN: u64 = 60 * SEC;
const HOUR: u64 = 60 * MIN;
const LIMIT: u64 = 1 << 63;

fn unit(u: &[u8]) -> Option<u64> {
    Some(match u {
        b"ns" => NS,
        b"us" => US,
        // U+00B5 micro sign, U+03BC Greek small letter mu
        b"\xc2\xb5s" | b"\xce\xbcs" => US,
        b"ms" => MS,
        b"s" => SEC,
        b"m" => MIN,
        b"h" => HOUR,
        _ => return None,
    })
}

fn quote(s: &str) -> String {
    format!("\"{s}\"")
}

/// Parses a Go duration string.
pub fn parse(orig: &str) -> Result<GoDuration, DurationError> {
    let invalid = || DurationError(format!("invalid duration {}", quote(orig)));
    let mut s = orig.as_bytes();
    let mut neg = false;
    if let Some(&c) = s.first()
        && (c == b'-' || c == b'+')
    {
        neg = c == b'-';
        s = &s[1..];
    }
    if s == b"0" {
        return Ok(GoDuration(0));
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut d: u64 = 0;
    while !s.is_empty() {
        if !(s[0] == b'.' || s[0].is_ascii_digit()) {
            return Err(invalid());
        }
        // [0-9]*
        let before = s.len();
        let mut v: u64 = 0;
        let mut i = 0;
        while i < s.len() && s[i].is_ascii_digit() {
            if v > LIMIT / 10 {
                return Err(invalid());
            }
            v = v * 10 + u64::from(s[i] - b'0');
            if v > LIMIT {
                return Err(invalid());
            }
            i += 1;
        }
        s = &s[i..];
        let pre = before != s.len();
        // (\.[0-9]*)?
        let mut post = false;
        let mut f: u64 = 0;
        let mut scale: f64 = 1.0;
        if s.first() == Some(&b'.') {
            s = &s[1..];
            let before = s.len();
            let mut overflow = false;
            let mut i = 0;
            while i < s.len() && s[i].is_ascii_digit() {
                if !overflow {
                    if f > (LIMIT - 1) / 10 {
                        overflow = true;
                    } else {
                        let y = f * 10 + u64::from(s[i] - b'0');
                        if y > LIMIT {
                            overflow = true;
                        } else {
                            f = y;
                            scale *= 10.0;
                        }
                    }
                }
                i += 1;
            }
            s = &s[i..];
            post = before != s.len();
        }
        if !pre && !post {
            return Err(invalid());
        }
        // unit: everything up to the next '.' or digit
        let mut i = 0;
        while i < s.len() && !(s[i] == b'.' || s[i].is_ascii_digit()) {
            i += 1;
        }
        if i == 0 {
            return Err(DurationError(format!(
                "missing unit in duration {}",
                quote(orig)
            )));
        }
        let u = &s[..i];
        s = &s[i..];
        let Some(unit) = unit(u) else {
            return Err(DurationError(format!(
                "unknown unit {} in duration {}",
                quote(&String::from_utf8_lossy(u)),
                quote(orig)
            )));
        };
        if v > LIMIT / unit {
            return Err(invalid());
        }
        v *= unit;
        if f > 0 {
            v += (f as f64 * (unit as f64 / scale)) as u64;
            if v > LIMIT {
                return Err(invalid());
            }
        }
        d += v;
        if d > LIMIT {
            return Err(invalid());
        }
    }
    if neg {
        // d <= 2^63 here, so the negation fits (2^63 becomes i64::MIN).
        return Ok(GoDuration((d as i64).wrapping_neg()));
    }
    if d > LIMIT - 1 {
        return Err(invalid());
    }
    Ok(GoDuration(d as i64))
}

impl std::str::FromStr for GoDuration {
    type Err = DurationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s)
    }
}

/// Writes `v / 10^prec` fraction digits (without trailing zeros) in front of `buf[..w]`.
fn fmt_frac(buf: &mut [u8], mut w: usize, mut v: u64, prec: usize) -> (usize, u64) {
    let mut print = false;
    for _ in 0..prec {
        let digit = v % 10;
        print = print || digit != 0;
        if print {
            w -= 1;
            buf[w] = digit as u8 + b'0';
        }
        v /= 10;
    }
    if print {
        w -= 1;
        buf[w] = b'.';
    }
    (w, v)
}

fn fmt_int(buf: &mut [u8], mut w: usize, mut v: u64) -> usize {
    if v == 0 {
        w -= 1;
        buf[w] = b'0';
    } else {
        while v > 0 {
            w -= 1;
            buf[w] = (v % 10) as u8 + b'0';
            v /= 10;
        }
    }
    w
}

impl fmt::Display for GoDuration {
    /// Go's `Duration.String`: `1h15m30.918273645s`, `300ms`, `1.5µs`, `0s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 32];
        let mut w = buf.len();
        let neg = self.0 < 0;
        let mut u = self.0.unsigned_abs();
        if u < SEC {
            let prec;
            w -= 1;
            buf[w] = b's';
            w -= 1;
            if u == 0 {
                buf[w] = b'0';
                return f.write_str(std::str::from_utf8(&buf[w..]).map_err(|_| fmt::Error)?);
            } else if u < US {
                prec = 0;
                buf[w] = b'n';
            } else if u < MS {
                prec = 3;
                // "µ" is two bytes
                w -= 1;
                buf[w..w + 2].copy_from_slice("µ".as_bytes());
            } else {
                prec = 6;
                buf[w] = b'm';
            }
            let (nw, nu) = fmt_frac(&mut buf, w, u, prec);
            w = fmt_int(&mut buf, nw, nu);
        } else {
            w -= 1;
            buf[w] = b's';
            let (nw, nu) = fmt_frac(&mut buf, w, u, 9);
            w = nw;
            u = nu;
            w = fmt_int(&mut buf, w, u % 60);
            u /= 60;
            if u > 0 {
                w -= 1;
                buf[w] = b'm';
                w = fmt_int(&mut buf, w, u % 60);
                u /= 60;
                if u > 0 {
                    w -= 1;
                    buf[w] = b'h';
                    w = fmt_int(&mut buf, w, u);
                }
            }
        }
        if neg {
            w -= 1;
            buf[w] = b'-';
        }
        f.write_str(std::str::from_utf8(&buf[w..]).map_err(|_| fmt::Error)?)
    }
}

impl serde::Serialize for GoDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // Go's own table from src/time/time_test.go (parseDurationTests).
    const OK: &[(&str, i64)] = &[
        ("0", 0),
        ("5s", 5 * SEC as i64),
        ("30s", 30 * SEC as i64),
        ("1478s", 1478 * SEC as i64),
        ("-5s", -5 * SEC as i64),
        ("+5s", 5 * SEC as i64),
        ("-0", 0),
        ("+0", 0),
        ("5.0s", 5 * SEC as i64),
        ("5.6s", 5 * SEC as i64 + 600 * MS as i64),
        ("5.s", 5 * SEC as i64),
        (".5s", 500 * MS as i64),
        ("1.0s", SEC as i64),
        ("1.00s", SEC as i64),
        ("1.004s", SEC as i64 + 4 * MS as i64),
        ("1.0040s", SEC as i64 + 4 * MS as i64),
        ("100.00100s", 100 * SEC as i64 + MS as i64),
        ("10ns", 10),
        ("11us", 11 * US as i64),
        ("12µs", 12 * US as i64),
        ("12μs", 12 * US as i64),
        ("3μs", 3 * US as i64),
        ("13ms", 13 * MS as i64),
        ("14s", 14 * SEC as i64),
        ("15m", 15 * MIN as i64),
        ("16h", 16 * HOUR as i64),
        ("3h30m", 3 * HOUR as i64 + 30 * MIN as i64),
        (
            "10.5s4m",
            4 * MIN as i64 + 10 * SEC as i64 + 500 * MS as i64,
        ),
        (
            "-2m3.4s",
            -(2 * MIN as i64 + 3 * SEC as i64 + 400 * MS as i64),
        ),
        ("1h2m3s4ms5us6ns", 3_723_004_005_006),
        ("39h9m14.425s", 140_954_425 * MS as i64),
        ("52763797000ns", 52_763_797_000),
        ("0.3333333333333333333h", 20 * MIN as i64),
        ("9007199254740993ns", (1 << 53) + 1),
        ("9223372036854775807ns", i64::MAX),
        ("9223372036854775.807us", i64::MAX),
        ("9223372036s854ms775us807ns", i64::MAX),
        ("-9223372036854775808ns", i64::MIN),
        ("-9223372036854775.808us", i64::MIN),
        ("-9223372036s854ms775us808ns", i64::MIN),
        ("-2562047h47m16.854775808s", i64::MIN),
        ("0.100000000000000000000h", 6 * MIN as i64),
        (
            "0.830103483285477580700h",
            49 * MIN as i64 + 48 * SEC as i64 + 372_539_827,
        ),
        ("300ms", 300 * MS as i64),
        ("-1.5h", -(HOUR as i64 + 30 * MIN as i64)),
        ("1h15m30.918273645s", 4_530_918_273_645),
        ("1m30s", 90 * SEC as i64),
    ];

    const BAD: &[&str] = &[
        "",
        "3",
        "-",
        "s",
        ".",
        "-.",
        ".s",
        "+.s",
        "1d",
        "\u{85}\u{85}",
        "\u{FFFD}",
        "9223372036854775810ns",
        "9223372036854775808ns",
        "-9223372036854775809ns",
        "9223372036854776us",
        "3000000h",
        "9223372036854775.808us",
        "9223372036854ms775us808ns",
        "5 s",
        " 5s",
        "5s ",
        "1e3s",
        "5min",
        "90",
    ];

    #[test]
    fn go_table_parses() {
        for (s, want) in OK {
            assert_eq!(parse(s), Ok(GoDuration(*want)), "parsing {s:?}");
        }
    }

    #[test]
    fn go_table_rejects() {
        for s in BAD {
            assert!(parse(s).is_err(), "{s:?} should be rejected");
        }
    }

    #[test]
    fn error_wording_follows_go() {
        assert_eq!(
            parse("1d").unwrap_err().0,
            "unknown unit \"d\" in duration \"1d\""
        );
        assert_eq!(
            parse("5 s").unwrap_err().0,
            "unknown unit \" s\" in duration \"5 s\""
        );
        assert_eq!(
            parse("90").unwrap_err().0,
            "missing unit in duration \"90\""
        );
        assert_eq!(parse("").unwrap_err().0, "invalid duration \"\"");
    }

    #[test]
    fn display_matches_go() {
        let cases: &[(i64, &str)] = &[
            (0, "0s"),
            (1, "1ns"),
            (1100, "1.1µs"),
            (2_200_000, "2.2ms"),
            (3_300_000_000, "3.3s"),
            (4 * MIN as i64 + 5 * SEC as i64, "4m5s"),
            (4 * MIN as i64 + 5001 * MS as i64, "4m5.001s"),
            (
                5 * HOUR as i64 + 6 * MIN as i64 + 7001 * MS as i64,
                "5h6m7.001s",
            ),
            (8 * MIN as i64 + 1, "8m0.000000001s"),
            (i64::MAX, "2562047h47m16.854775807s"),
            (i64::MIN, "-2562047h47m16.854775808s"),
            (-1_500_000, "-1.5ms"),
        ];
        for (d, want) in cases {
            assert_eq!(GoDuration(*d).to_string(), *want);
        }
    }

    proptest! {
        #[test]
        fn display_round_trips(n in any::<i64>()) {
            let d = GoDuration(n);
            prop_assert_eq!(parse(&d.to_string()), Ok(d));
        }

        #[test]
        fn never_panics(s in "\\PC{0,24}") {
            let _ = parse(&s);
        }

        #[test]
        fn components_add_up(h in 0i64..1000, m in 0i64..60, s in 0i64..60, ms in 0i64..1000) {
            let text = format!("{h}h{m}m{s}s{ms}ms");
            let want = ((h * 60 + m) * 60 + s) * 1_000_000_000 + ms * 1_000_000;
            prop_assert_eq!(parse(&text), Ok(GoDuration(want)));
        }

        #[test]
        fn spaces_anywhere_are_rejected(n in 1u32..10_000, unit in prop::sample::select(vec!["ns", "us", "ms", "s", "m", "h"])) {
            let spaced = format!("{n} {unit}");
            prop_assert!(parse(&spaced).is_err());
        }

        #[test]
        fn fractions_match_integer_forms(ms in 0u32..1_000_000) {
            let secs = f64::from(ms) / 1000.0;
            // "%.3fs" of a whole number of milliseconds is exact in decimal
            let text = format!("{secs:.3}s");
            prop_assert_eq!(parse(&text), Ok(GoDuration(i64::from(ms) * 1_000_000)));
        }
    }
}
