//! Power loss's per-backend tally of crash images (what `RunEvent::CrashImages` carries and the summary
//! adds up): its own module because it is arithmetic on counts, not part of the event vocabulary.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A backend's crash images under power loss, by what each left before and after recovery (issue 13's
/// per-1,000-image figures). An image counts once in every column that applies to it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ImageTally {
    pub images: u64,
    /// Images missing a commit acknowledged before the cut.
    pub lost_commit: u64,
    /// Images whose indexes disagree with Packages (or that hold half of an atomic transaction) before
    /// recovery.
    pub inconsistent: u64,
    /// Images with a damaged page or header before recovery.
    pub corrupt: u64,
    /// Images the engine could not open at all before recovery.
    pub unopenable: u64,
    /// Images that needed recovery (anything but clean) …
    pub damaged: u64,
    /// … and of those, how many the engine's rebuilddb made verify clean (what was lost stays lost).
    pub mended: u64,
}

impl ImageTally {
    pub fn add(&mut self, o: &ImageTally) {
        self.images += o.images;
        self.lost_commit += o.lost_commit;
        self.inconsistent += o.inconsistent;
        self.corrupt += o.corrupt;
        self.unopenable += o.unopenable;
        self.damaged += o.damaged;
        self.mended += o.mended;
    }

    /// "per 1,000 images: …" for the terminal and the closing figures.
    pub fn per_mille(&self) -> String {
        let k = |n: u64| n as f64 * 1000.0 / self.images.max(1) as f64;
        format!(
            "{} images; per 1,000: {:.1} lose an acknowledged commit, {:.1} inconsistent indexes, {:.1} corrupt, \
             {:.1} unopenable; rebuilddb mended {} of {} damaged",
            self.images,
            k(self.lost_commit),
            k(self.inconsistent),
            k(self.corrupt),
            k(self.unopenable),
            self.mended,
            self.damaged
        )
    }
}
