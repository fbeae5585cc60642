//! The recorded editing traces that tests and benchmarks replay.
//!
//! The files in `data/` come from the public `josephg/editing-traces` data
//! set (CC BY 4.0; see `data/README.md` for credits). Positions in them count
//! Unicode scalar values, as everywhere in this product.
//!
//! - *Sequential* traces ([`SequentialTrace`]) are one person typing: apply
//!   every patch in order to `start_content` and you get `end_content`.
//! - *Concurrent* traces ([`ConcurrentTrace`]) are several people typing at
//!   once: each transaction's positions are relative to the document after
//!   its `parents` (merged).
//!
//! The directory is `data/` beside this crate, or `$EDITING_TRACES_DIR`.

use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;

use serde::Deserialize;

/// The sequential traces, by file name without `.json.gz`.
pub const SEQUENTIAL: [&str; 3] = ["automerge-paper", "seph-blog1", "rustcode"];
/// The concurrent traces.
pub const CONCURRENT: [&str; 1] = ["friendsforever"];

/// One edit: at `pos`, delete `del` characters, then insert `ins`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Patch {
    pub pos: usize,
    pub del: usize,
    pub ins: String,
}

impl<'de> Deserialize<'de> for Patch {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (pos, del, ins) = <(usize, usize, String)>::deserialize(d)?;
        Ok(Patch { pos, del, ins })
    }
}

/// A group of patches made together.
#[derive(Clone, Debug, Deserialize)]
pub struct Txn {
    pub patches: Vec<Patch>,
}

/// One person typing.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SequentialTrace {
    #[serde(skip)]
    pub name: String,
    pub start_content: String,
    pub end_content: String,
    pub txns: Vec<Txn>,
}

/// A transaction of a concurrent trace.
#[derive(Clone, Debug, Deserialize)]
pub struct ConcurrentTxn {
    /// Indexes of the transactions this one was made after (merged).
    pub parents: Vec<usize>,
    /// Who made it.
    pub agent: usize,
    pub patches: Vec<Patch>,
}

/// Several people typing at once.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConcurrentTrace {
    #[serde(skip)]
    pub name: String,
    pub end_content: String,
    pub num_agents: usize,
    pub txns: Vec<ConcurrentTxn>,
}

impl SequentialTrace {
    /// Number of patches (one keystroke each, mostly).
    pub fn patch_count(&self) -> usize {
        self.txns.iter().map(|t| t.patches.len()).sum()
    }

    /// Every patch in order.
    pub fn patches(&self) -> impl Iterator<Item = &Patch> {
        self.txns.iter().flat_map(|t| t.patches.iter())
    }
}

/// Where the trace files are.
pub fn dir() -> PathBuf {
    match std::env::var_os("EDITING_TRACES_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data"),
    }
}

fn read<T: for<'de> Deserialize<'de>>(name: &str) -> Result<T, String> {
    let path = dir().join(format!("{name}.json.gz"));
    let file = File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let reader = BufReader::new(flate2::read::GzDecoder::new(file));
    serde_json::from_reader(reader).map_err(|e| format!("{}: {e}", path.display()))
}

/// Loads a sequential trace by name.
pub fn sequential(name: &str) -> Result<SequentialTrace, String> {
    let mut trace: SequentialTrace = read(name)?;
    trace.name = name.to_owned();
    Ok(trace)
}

/// Loads a concurrent trace by name.
pub fn concurrent(name: &str) -> Result<ConcurrentTrace, String> {
    let mut trace: ConcurrentTrace = read(name)?;
    trace.name = name.to_owned();
    Ok(trace)
}
