//! Output templates: literal text with `{name}` (a field or a capture) and `{name@table}` (a lookup).

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Value { name: String, table: Option<String> },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Template(Vec<Piece>);

impl Template {
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                pieces.push(Piece::Text(rest[..open].to_string()));
            }
            let close = rest[open..].find('}').ok_or_else(|| format!("{text:?}: '{{' without '}}'"))? + open;
            let inner = &rest[open + 1..close];
            let (name, table) = match inner.split_once('@') {
                Some((n, t)) => (n.trim(), Some(t.trim().to_string())),
                None => (inner.trim(), None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') {
                return Err(format!("{text:?}: bad placeholder {{{inner}}}"));
            }
            pieces.push(Piece::Value { name: name.to_string(), table });
            rest = &rest[close + 1..];
        }
        if rest.contains('}') {
            return Err(format!("{text:?}: '}}' without '{{'"));
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        Ok(Template(pieces))
    }

    pub fn tables(&self) -> impl Iterator<Item = &str> {
        self.0.iter().filter_map(|p| match p {
            Piece::Value { table: Some(t), .. } => Some(t.as_str()),
            _ => None,
        })
    }

    /// The text, or `None` when a placeholder has no value (then the output stays unknown).
    pub fn render(
        &self,
        value: impl Fn(&str) -> Option<String>,
        lookup: impl Fn(&str, &str) -> Option<String>,
    ) -> Option<String> {
        let mut out = String::new();
        for p in &self.0 {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Value { name, table } => {
                    let v = value(name)?;
                    let v = match table {
                        Some(t) => lookup(t, &v)?,
                        None => v,
                    };
                    out.push_str(&v);
                }
            }
        }
        let out = out.trim().to_string();
        (!out.is_empty()).then_some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_fields_and_lookups_and_refuses_missing_values() {
        let t = Template::parse("Modicon {product} v{rev@revs}").unwrap();
        let value = |n: &str| match n {
            "product" => Some("M340".to_string()),
            "rev" => Some("1".to_string()),
            _ => None,
        };
        let lookup = |t: &str, k: &str| (t == "revs" && k == "1").then(|| "2.7".to_string());
        assert_eq!(t.render(value, lookup).as_deref(), Some("Modicon M340 v2.7"));
        assert_eq!(Template::parse("{missing}").unwrap().render(value, lookup), None);
        assert!(Template::parse("{oops").is_err());
        assert!(Template::parse("a}").is_err());
        assert!(Template::parse("{}").is_err());
    }
}
