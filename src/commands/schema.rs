//! `tagpilot schema`: the JSON Schema of tagpilot.yaml.

use crate::error::Result;

pub fn run() -> Result<()> {
    let schema = serde_json::to_string_pretty(&crate::spec::json_schema()).expect("schema is JSON");
    crate::ui::print_stdout(&format!("{schema}\n"));
    Ok(())
}
