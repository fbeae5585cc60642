//! Sections: which concurrent changes conflict.
//!
//! Two changes made on the same text conflict when they touch the same
//! *section*. What a section is, is a per-document [`SectionPolicy`]:
//!
//! - `line` (the default, as git): two changes that touch the same line
//!   conflict. In prose a line is a paragraph.
//! - `range`: only overlapping or touching character ranges conflict.
//!
//! Everything goes through one function, [`SectionPolicy::section`]: without
//! a text it gives the *footprint* of a hunk (where it edits, text-free, so
//! the server can compute it for a change rebased from an old revision);
//! with the text the hunk applies to it gives the *section* the hunk claims.
//! A rebased change conflicts with a committed one when one of its
//! footprints meets one of the committed change's sections, both on the
//! text the committed change was made on. Adding a policy is adding one case
//! to that function.
//!
//! Positions here are gaps between characters: position `p` is just before
//! character `p`. A [`Span`] is a closed range of positions.

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::delta::{Delta, Hunk};
use crate::text::Lines;

/// A closed range of positions `start..=end` in a text. As a character
/// range it is `start..end`; an insertion point is a span with `start == end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Span {
    /// First position.
    pub start: usize,
    /// Last position.
    pub end: usize,
}

impl Span {
    /// The span `start..=end`.
    pub fn new(start: usize, end: usize) -> Span {
        debug_assert!(start <= end);
        Span { start, end }
    }

    /// True when the two spans share a position.
    pub fn meets(&self, other: &Span) -> bool {
        self.start <= other.end && other.start <= self.end
    }

    /// The span as it lies after `delta`: it stretches over text inserted at
    /// either of its ends.
    pub fn map(&self, delta: &Delta) -> Span {
        use crate::delta::Bias;
        let start = delta.map_position(self.start, Bias::Left);
        let end = delta.map_position(self.end, Bias::Right).max(start);
        Span { start, end }
    }

    /// The span as it lay before `delta` (inserted text maps to where it was inserted).
    pub fn map_back(&self, delta: &Delta) -> Span {
        let start = delta.map_position_back(self.start);
        let end = delta.map_position_back(self.end).max(start);
        Span { start, end }
    }
}

/// The sections a change touches: sorted, merged spans. Almost every change
/// is one hunk, so one span lives inline.
pub type Sections = SmallVec<[Span; 1]>;

/// How a document decides that two concurrent changes touch the same section.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SectionPolicy {
    /// Changes touching the same line conflict (as git).
    #[default]
    Line,
    /// Only overlapping or touching character ranges conflict.
    Range,
}

impl SectionPolicy {
    /// All policies, for tests and configuration.
    pub const ALL: [SectionPolicy; 2] = [SectionPolicy::Line, SectionPolicy::Range];

    /// The policy's name, as in configuration files.
    pub fn name(self) -> &'static str {
        match self {
            SectionPolicy::Line => "line",
            SectionPolicy::Range => "range",
        }
    }

    /// Parses a policy name.
    pub fn from_name(name: &str) -> Option<SectionPolicy> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The one function every conflict decision goes through.
    ///
    /// Without `text`: the hunk's footprint, the positions it edits.
    /// With `text` (the text the hunk applies to): the section it claims.
    pub fn section<L: Lines + ?Sized>(self, hunk: Hunk, text: Option<&L>) -> Span {
        match self {
            // A deletion spans its characters and both ends, so that ranges
            // that only touch still conflict.
            SectionPolicy::Range => Span::new(hunk.start, hunk.start + hunk.deleted),
            // The positions before each deleted character (or the insertion
            // point), grown to whole lines when the text is known.
            SectionPolicy::Line => {
                let footprint = Span::new(hunk.start, hunk.start + hunk.deleted.saturating_sub(1));
                match text {
                    None => footprint,
                    Some(text) => Span::new(text.line_start(footprint.start), text.line_end(footprint.end)),
                }
            }
        }
    }

    /// Footprints of every hunk of `delta`, text-free.
    pub fn footprints(self, delta: &Delta) -> Sections {
        merge(delta.hunks().map(|h| self.section::<str>(h, None)))
    }

    /// Sections claimed by `delta` on `text`, the text it applies to.
    pub fn sections<L: Lines + ?Sized>(self, delta: &Delta, text: &L) -> Sections {
        merge(delta.hunks().map(|h| self.section(h, Some(text))))
    }

    /// The first section of `claimed` that one of `delta`'s footprints
    /// meets, if any. `delta` and the change that claimed the sections must
    /// apply to the same text.
    pub fn conflict(self, delta: &Delta, claimed: &[Span]) -> Option<Span> {
        if claimed.is_empty() {
            return None;
        }
        let mut claims = claimed.iter().peekable();
        for footprint in delta.hunks().map(|h| self.section::<str>(h, None)) {
            while let Some(claim) = claims.peek() {
                if claim.meets(&footprint) {
                    return Some(**claim);
                }
                if claim.end < footprint.start {
                    claims.next();
                } else {
                    break;
                }
            }
        }
        None
    }
}

/// Sorted spans, overlapping ones merged.
fn merge(spans: impl Iterator<Item = Span>) -> Sections {
    let mut out = Sections::new();
    for span in spans {
        match out.last_mut() {
            Some(last) if span.start <= last.end => last.end = last.end.max(span.end),
            _ => out.push(span),
        }
    }
    out
}
