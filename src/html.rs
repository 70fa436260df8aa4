//! HTML text: the one escape every page of otscope (the report, the console, the notices) uses.

use std::fmt;

/// `s` with the five HTML-significant characters escaped, safe in text and in quoted attributes.
pub fn escape(s: &str) -> String {
    Esc(s).to_string()
}

/// Escapes its text when displayed.
pub struct Esc<'a>(pub &'a str);

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(i) = rest.find(['&', '<', '>', '"', '\'']) {
            f.write_str(&rest[..i])?;
            f.write_str(match rest.as_bytes()[i] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            })?;
            rest = &rest[i + 1..];
        }
        f.write_str(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_the_five_characters() {
        assert_eq!(escape(r#"<a href="x">&'</a>"#), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;");
        assert_eq!(escape("浦东新区 一号水厂"), "浦东新区 一号水厂");
        assert_eq!(escape(""), "");
        assert_eq!(escape("&amp;"), "&amp;amp;");
        assert_eq!(escape("a<"), "a&lt;");
    }
}
