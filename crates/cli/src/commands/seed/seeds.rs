//! `seeds.json` in the store directory: what `seed` keeps available, so a restart (or
//! `seed` with no arguments) resumes every earlier seed.
//!
//! Owns: the file's format (`{"version":1,"seeds":{"<name>":{"key","sparse","own"}}}`),
//! written atomically. Must not: open logs.
//! Used by: `seed`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{CliError, CliResult};
use crate::store::write_atomically;

/// The file name in the store directory.
pub const SEEDS_FILE: &str = "seeds.json";

/// One seeded log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seed {
    /// The log's public key, hex.
    pub key: String,
    /// A sparse replica.
    #[serde(default)]
    pub sparse: bool,
    /// Our own log (written here) rather than a replica.
    #[serde(default)]
    pub own: bool,
}

/// The seed list.
#[derive(Debug, Serialize, Deserialize)]
pub struct Seeds {
    version: u32,
    /// Name to seed.
    pub seeds: BTreeMap<String, Seed>,
    #[serde(skip)]
    path: PathBuf,
}

impl Seeds {
    /// Loads the list of the store at `dir` (empty when there is none yet).
    pub fn load(dir: &Path) -> CliResult<Seeds> {
        let path = dir.join(SEEDS_FILE);
        let mut seeds = match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice::<Seeds>(&bytes).map_err(|e| CliError::BadFile {
                    path: path.clone(),
                    reason: e.to_string(),
                })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Seeds {
                version: 1,
                seeds: BTreeMap::new(),
                path: PathBuf::new(),
            },
            Err(e) => return Err(CliError::storage(&path, e)),
        };
        seeds.path = path;
        Ok(seeds)
    }

    /// Adds or replaces `name`; returns whether anything changed.
    pub fn insert(&mut self, name: &str, seed: Seed) -> bool {
        self.seeds.insert(name.to_owned(), seed.clone()) != Some(seed)
    }

    /// Writes the list (temp file and rename).
    pub async fn save(&self) -> CliResult<()> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| CliError::BadFile {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        write_atomically(self.path.clone(), json).await
    }
}
