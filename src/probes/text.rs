//! Text helpers shared by the protocol modules that read text (HTTP titles, Fox values).

use std::ops::RangeInclusive;

/// Replaces each `<marker><name>;` of `text` whose name, `names` characters long, `decode` knows by
/// its character (HTML's `&amp;`, Fox's `#3a;`); everything else, the marker included, is kept.
pub fn decode_references(
    text: &str,
    marker: char,
    names: RangeInclusive<usize>,
    decode: impl Fn(&str) -> Option<char>,
) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(marker) {
        out.push_str(&rest[..i]);
        let after = &rest[i + marker.len_utf8()..];
        let decoded =
            after.find(';').filter(|end| names.contains(end)).and_then(|end| Some((decode(&after[..end])?, end)));
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &after[end + 1..];
            }
            None => {
                out.push(marker);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_references_are_decoded_and_the_rest_kept() {
        let hex = |name: &str| char::from_u32(u32::from_str_radix(name, 16).ok()?);
        assert_eq!(decode_references("a#3a;b#zz;c#;d#3a", '#', 1..=6, hex), "a:b#zz;c#;d#3a");
        assert_eq!(decode_references("#1234567;", '#', 1..=6, hex), "#1234567;", "a name too long is kept");
        assert_eq!(decode_references("", '#', 1..=6, hex), "");
    }
}
