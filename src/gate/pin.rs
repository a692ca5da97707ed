//! `ddgsd-bench pin`: writes the checkpoint hashes of a finished suite into
//! its expected file under `[pins."<platform>"]`, keeping every comment and
//! every other entry of the file as it was.
use crate::gate::expected::Expected;
use crate::train::record::Record;
use crate::util::atomic;
use crate::util::error::{read_text, InputError};
use anyhow::{bail, Result};
use std::path::Path;
use toml_edit::{value, DocumentMut, Item, Table};

/// Adds or replaces one pin per record; returns how many changed.
pub fn write_pins(expected: &Path, records: &[Record]) -> Result<usize> {
    atomic::refuse_read_only(expected, "pin")?;
    // The file must be a valid expected file before and after.
    let before = Expected::load(expected)?;
    if let Some(r) = records.iter().find(|r| r.suite != before.suite) {
        before.require_suite(&r.suite, &format!("record {} is of", r.run_id))?;
    }
    let text = read_text(expected)?;
    let mut doc: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| {
        InputError::new(expected, None, e.message().to_string())
    })?;
    let pins = doc.entry("pins").or_insert(Item::Table(Table::new()));
    let Some(pins) = pins.as_table_mut() else {
        bail!(InputError::new(expected, Some("pins"), "expected a table"));
    };
    pins.set_implicit(true);
    let mut changed = 0;
    for r in records {
        let plat = pins.entry(&r.platform).or_insert(Item::Table(Table::new()));
        let Some(plat) = plat.as_table_mut() else {
            bail!(InputError::new(
                expected,
                Some(&format!("pins.\"{}\"", r.platform)),
                "expected a table"
            ));
        };
        if plat.get(&r.run_id).and_then(|v| v.as_str()) != Some(r.checkpoint_sha256.as_str()) {
            plat.insert(&r.run_id, value(r.checkpoint_sha256.clone()));
            changed += 1;
        }
    }
    let out = doc.to_string();
    // Re-validate what we are about to write.
    let probe: Expected = crate::util::error::parse_toml(expected, &out)?;
    drop(probe);
    atomic::write(expected, out.as_bytes())?;
    Ok(changed)
}
