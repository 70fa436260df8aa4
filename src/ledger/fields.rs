//! The ledger's columns and the words of its `level` column, in English and as the center's own forms
//! write them in Chinese. The header row may use any of a column's names; messages use the header as
//! the file writes it.

use super::Level;

/// One column of the ledger: its English name and the Chinese names accepted for it (the first is
/// the one the center's forms and `otscope ledger template --lang zh` use).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub key: &'static str,
    pub zh: &'static [&'static str],
}

impl Field {
    /// The column's name in a header of that language.
    pub fn name(&self, chinese: bool) -> &'static str {
        if chinese {
            self.zh[0]
        } else {
            self.key
        }
    }

    fn names(&self) -> impl Iterator<Item = &'static str> {
        std::iter::once(self.key).chain(self.zh.iter().copied())
    }
}

pub const ENTERPRISE_ID: Field = Field { key: "enterprise_id", zh: &["企业编号"] };
pub const ENTERPRISE: Field = Field { key: "enterprise", zh: &["企业名称"] };
pub const DISTRICT: Field = Field { key: "district", zh: &["所属区县", "区县"] };
pub const SECTOR: Field = Field { key: "sector", zh: &["行业"] };
pub const LEVEL: Field = Field { key: "level", zh: &["重要程度"] };
pub const TARGETS: Field = Field { key: "targets", zh: &["IP地址/域名", "IP地址", "IP/域名"] };
pub const CONTACT: Field = Field { key: "contact", zh: &["联系人"] };

/// Every column, in the order of the template and the README.
pub const FIELDS: [Field; 7] = [ENTERPRISE_ID, ENTERPRISE, DISTRICT, SECTOR, LEVEL, TARGETS, CONTACT];

/// What a `level` cell says: an object's level, or that the row lists addresses never to be probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowLevel {
    Object(Level),
    Exclude,
}

/// The words of the `level` column: (English, Chinese).
pub const LEVEL_WORDS: [(RowLevel, &str, &str); 3] = [
    (RowLevel::Object(Level::Important), "important", "重要"),
    (RowLevel::Object(Level::General), "general", "一般"),
    (RowLevel::Exclude, "exclude", "排除"),
];

pub fn row_level(text: &str) -> Option<RowLevel> {
    let text = text.trim();
    LEVEL_WORDS.iter().find(|(_, en, zh)| text.eq_ignore_ascii_case(en) || text == *zh).map(|(l, _, _)| *l)
}

/// A header cell as compared with the names: without a BOM or white space, full-width forms (`／`,
/// `ＩＰ`, as a Chinese input method types them) as ASCII, ASCII letters in lower case.
fn normalised(name: &str) -> String {
    name.chars()
        .filter(|c| !c.is_whitespace() && *c != '\u{feff}')
        .map(|c| match c {
            '\u{ff01}'..='\u{ff5e}' => char::from_u32(c as u32 - 0xfee0).unwrap_or(c),
            _ => c,
        })
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// The field a header cell names, if any.
pub fn field_named(header: &str) -> Option<Field> {
    let wanted = normalised(header);
    FIELDS.into_iter().find(|f| f.names().any(|n| normalised(n) == wanted))
}

/// Every accepted name, for the message about a header that names none.
pub fn accepted_names() -> String {
    FIELDS.iter().map(|f| f.names().collect::<Vec<_>>().join(" | ")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_matched_in_either_language_and_as_input_methods_type_them() {
        assert_eq!(field_named("enterprise_id"), Some(ENTERPRISE_ID));
        assert_eq!(field_named(" Targets "), Some(TARGETS));
        assert_eq!(field_named("\u{feff}企业编号"), Some(ENTERPRISE_ID));
        assert_eq!(field_named("区县"), Some(DISTRICT));
        assert_eq!(field_named("所属区县"), Some(DISTRICT));
        for name in ["IP地址/域名", "IP地址", "IP/域名", "ip地址／域名", "ＩＰ地址", "IP 地址"] {
            assert_eq!(field_named(name), Some(TARGETS), "{name}");
        }
        assert_eq!(field_named("序号"), None);
        assert_eq!(field_named(""), None);
    }

    #[test]
    fn levels_are_read_in_either_language() {
        assert_eq!(row_level("重要"), Some(RowLevel::Object(Level::Important)));
        assert_eq!(row_level(" General "), Some(RowLevel::Object(Level::General)));
        assert_eq!(row_level("一般"), Some(RowLevel::Object(Level::General)));
        assert_eq!(row_level("排除"), Some(RowLevel::Exclude));
        assert_eq!(row_level("EXCLUDE"), Some(RowLevel::Exclude));
        assert_eq!(row_level("urgent"), None);
    }
}
