//! Tag numbers (rpm's `rpmtag.h`) and the index list of rpm 4.16+, with each index's key class.
//!
//! Why here: the index list and key encoding are the contract between Packages and every index; every backend
//! and the verifier share this one table.

pub const HEADERIMMUTABLE: u32 = 63;
pub const HEADERSIGNATURES: u32 = 62;
pub const HEADERI18NTABLE: u32 = 100;
pub const SIGMD5: u32 = 261;
pub const SHA1HEADER: u32 = 269;
pub const SHA256HEADER: u32 = 273;
pub const NAME: u32 = 1000;
pub const VERSION: u32 = 1001;
pub const RELEASE: u32 = 1002;
pub const EPOCH: u32 = 1003;
pub const BUILDTIME: u32 = 1006;
pub const INSTALLTIME: u32 = 1008;
pub const GROUP: u32 = 1016;
pub const ARCH: u32 = 1022;
pub const FILESIZES: u32 = 1028;
pub const FILESTATES: u32 = 1029;
pub const FILEMODES: u32 = 1030;
pub const FILEDIGESTS: u32 = 1035;
pub const PROVIDENAME: u32 = 1047;
pub const REQUIREFLAGS: u32 = 1048;
pub const REQUIRENAME: u32 = 1049;
pub const CONFLICTNAME: u32 = 1054;
pub const TRIGGERNAME: u32 = 1066;
pub const OBSOLETENAME: u32 = 1090;
pub const DIRINDEXES: u32 = 1116;
pub const BASENAMES: u32 = 1117;
pub const DIRNAMES: u32 = 1118;
pub const INSTALLCOLOR: u32 = 1127;
pub const INSTALLTID: u32 = 1128;
pub const FILECOLORS: u32 = 1140;
pub const RECOMMENDNAME: u32 = 5046;
pub const SUGGESTNAME: u32 = 5049;
pub const SUPPLEMENTNAME: u32 = 5052;
pub const ENHANCENAME: u32 = 5055;
pub const FILETRIGGERNAME: u32 = 5069;
pub const FILETRIGGERINDEX: u32 = 5070;
pub const TRANSFILETRIGGERNAME: u32 = 5079;
pub const TRANSFILETRIGGERINDEX: u32 = 5080;

/// How an index key is encoded and stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyClass {
    /// A string without its NUL; sqlite column type TEXT.
    String,
    /// A 4-byte integer in host byte order (rpm keys are host order by design); sqlite BLOB.
    Int32,
    /// Raw bytes; sqlite BLOB.
    Bin,
}

/// One secondary index of the rpmdb.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IndexTag(pub u32);

/// rpm 4.16+'s index list, in rpm's order (`rpmdbIndexTags`).
pub const INDEXES: [IndexTag; 18] = [
    IndexTag(NAME),
    IndexTag(BASENAMES),
    IndexTag(GROUP),
    IndexTag(REQUIRENAME),
    IndexTag(PROVIDENAME),
    IndexTag(CONFLICTNAME),
    IndexTag(OBSOLETENAME),
    IndexTag(TRIGGERNAME),
    IndexTag(DIRNAMES),
    IndexTag(INSTALLTID),
    IndexTag(SIGMD5),
    IndexTag(SHA1HEADER),
    IndexTag(FILETRIGGERNAME),
    IndexTag(TRANSFILETRIGGERNAME),
    IndexTag(RECOMMENDNAME),
    IndexTag(SUGGESTNAME),
    IndexTag(SUPPLEMENTNAME),
    IndexTag(ENHANCENAME),
];

impl IndexTag {
    /// rpm's table / file name for the index.
    pub fn name(self) -> &'static str {
        match self.0 {
            NAME => "Name",
            BASENAMES => "Basenames",
            GROUP => "Group",
            REQUIRENAME => "Requirename",
            PROVIDENAME => "Providename",
            CONFLICTNAME => "Conflictname",
            OBSOLETENAME => "Obsoletename",
            TRIGGERNAME => "Triggername",
            DIRNAMES => "Dirnames",
            INSTALLTID => "Installtid",
            SIGMD5 => "Sigmd5",
            SHA1HEADER => "Sha1header",
            FILETRIGGERNAME => "Filetriggername",
            TRANSFILETRIGGERNAME => "Transfiletriggername",
            RECOMMENDNAME => "Recommendname",
            SUGGESTNAME => "Suggestname",
            SUPPLEMENTNAME => "Supplementname",
            ENHANCENAME => "Enhancename",
            _ => "Unknown",
        }
    }

    pub fn by_name(name: &str) -> Option<IndexTag> {
        INDEXES.iter().copied().find(|t| t.name().eq_ignore_ascii_case(name))
    }

    pub fn key_class(self) -> KeyClass {
        match self.0 {
            INSTALLTID => KeyClass::Int32,
            SIGMD5 => KeyClass::Bin,
            _ => KeyClass::String,
        }
    }

    /// Whether rpm's tag returns an array (rpm creates an `hnum` index on such tables).
    pub fn is_array(self) -> bool {
        !matches!(self.0, NAME | GROUP | INSTALLTID | SIGMD5 | SHA1HEADER)
    }
}

impl std::fmt::Display for IndexTag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
