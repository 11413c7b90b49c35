//! Where a region file was written: the width of its links (`Layout`, 4 or 8 bytes) and whether its
//! process ids are this machine's (`Origin`).
//!
//! Why: the lock region's self-relative links are pointer-width, so a 32-bit ARM guest's `__db.003` has
//! 4-byte links at other offsets than an x86_64 one. Reading it with this machine's layout would report
//! damage that is not there. The writer always uses [`Layout::NATIVE`]; only readers (the verifier,
//! `inspect`) take another. The pids in a region from another machine name none of this machine's
//! processes: each of them is dead as far as this machine can tell, never "alive" by a pid collision.

/// The width of a region's links (shqueue's signed self-relative offsets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Layout {
    word: usize,
}

impl Layout {
    /// This build's own layout: what the writer uses.
    pub const NATIVE: Layout = Layout { word: std::mem::size_of::<usize>() };
    pub const W32: Layout = Layout { word: 4 };
    pub const W64: Layout = Layout { word: 8 };

    /// The layout of a machine whose pointers are `bits` wide (32 or 64), if it is one we can read.
    pub fn for_pointer_width(bits: u32) -> Option<Layout> {
        match bits {
            32 => Some(Layout::W32),
            64 => Some(Layout::W64),
            _ => None,
        }
    }

    /// Bytes per link.
    pub const fn word(self) -> usize {
        self.word
    }
}

/// How to read a set of region files: their layout, and whether their pids can be asked about here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    pub layout: Layout,
    /// Written on this machine (its pids are this kernel's).
    pub local: bool,
}

impl Origin {
    /// Written here, by this build.
    pub const HERE: Origin = Origin { layout: Layout::NATIVE, local: true };

    /// Written on another machine with `layout`.
    pub fn foreign(layout: Layout) -> Origin {
        Origin { layout, local: false }
    }

    /// rpm's is_alive for a pid of these files: another machine's processes are all dead here.
    pub fn alive(&self, pid: u32) -> bool {
        self.local && super::is_alive(pid)
    }
}
