//! A string from the spec that remembers where it was written, so that every later error about
//! it (an undefined variable, a bad glob, a bad template) can name the file, line and column.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer};
use serde_saphyr::{Location, Spanned};

#[derive(Clone, Debug, Default)]
pub struct Text {
    pub value: String,
    pub line: u64,
    pub column: u64,
}

impl Text {
    /// A default value that was not written in the file.
    pub fn unplaced(value: impl Into<String>) -> Self {
        Text {
            value: value.into(),
            line: 0,
            column: 0,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.value
    }

    /// `file:line:column` when the value came from the file, else just `file` (a default).
    pub fn place(&self, file: &str) -> String {
        if self.line == 0 {
            file.to_string()
        } else {
            format!("{file}:{}:{}", self.line, self.column)
        }
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<String>::deserialize(deserializer)?;
        let at: Location = spanned.referenced;
        Ok(Text {
            value: spanned.value,
            line: at.line(),
            column: at.column(),
        })
    }
}

impl JsonSchema for Text {
    fn schema_name() -> Cow<'static, str> {
        "String".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        String::json_schema(generator)
    }

    fn inline_schema() -> bool {
        true
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.value)
    }
}
