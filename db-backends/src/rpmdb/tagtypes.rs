//! The types rpm declares for the tags it knows (its tag table), for the check rpm 4.18's header import makes
//! on a header with an immutable region: a known tag stored with another type is rejected ("BAD"), unless
//! both types are strings (string, string array and i18n string are interchangeable); unknown tags pass.
//!
//! The tags rpm verifies a header with when it reads it from its database (size, MD5, SHA1, SHA256,
//! DSA/RSA header signatures) must have exactly their type, strings included: rpm's signature check takes
//! a digest stored as a string array as BAD.
//!
//! Why a table of our own: rpm's is compiled into librpm. This one holds the tags rpmdb headers carry in
//! practice; a tag missing here is treated as unknown (accepted), as rpm treats tags newer than itself.

use super::header::TagType;

/// (tag, type rpm declares).
const TABLE: &[(u32, TagType)] = &[
    (100, TagType::StringArray),  // HEADERI18NTABLE
    (261, TagType::Bin),          // SIGMD5
    (269, TagType::String),       // SHA1HEADER
    (273, TagType::String),       // SHA256HEADER
    (1000, TagType::String),      // NAME
    (1001, TagType::String),      // VERSION
    (1002, TagType::String),      // RELEASE
    (1003, TagType::Int32),       // EPOCH
    (1004, TagType::I18nString),  // SUMMARY
    (1005, TagType::I18nString),  // DESCRIPTION
    (1006, TagType::Int32),       // BUILDTIME
    (1007, TagType::String),      // BUILDHOST
    (1008, TagType::Int32),       // INSTALLTIME
    (1009, TagType::Int32),       // SIZE
    (1014, TagType::String),      // LICENSE
    (1016, TagType::I18nString),  // GROUP
    (1020, TagType::String),      // URL
    (1021, TagType::String),      // OS
    (1022, TagType::String),      // ARCH
    (1028, TagType::Int32),       // FILESIZES
    (1029, TagType::Char),        // FILESTATES
    (1030, TagType::Int16),       // FILEMODES
    (1034, TagType::Int32),       // FILEMTIMES
    (1035, TagType::StringArray), // FILEDIGESTS
    (1036, TagType::StringArray), // FILELINKTOS
    (1037, TagType::Int32),       // FILEFLAGS
    (1039, TagType::StringArray), // FILEUSERNAME
    (1040, TagType::StringArray), // FILEGROUPNAME
    (1044, TagType::String),      // SOURCERPM
    (1047, TagType::StringArray), // PROVIDENAME
    (1048, TagType::Int32),       // REQUIREFLAGS
    (1049, TagType::StringArray), // REQUIRENAME
    (1050, TagType::StringArray), // REQUIREVERSION
    (1053, TagType::Int32),       // CONFLICTFLAGS
    (1054, TagType::StringArray), // CONFLICTNAME
    (1055, TagType::StringArray), // CONFLICTVERSION
    (1064, TagType::String),      // RPMVERSION
    (1066, TagType::StringArray), // TRIGGERNAME
    (1090, TagType::StringArray), // OBSOLETENAME
    (1112, TagType::Int32),       // PROVIDEFLAGS
    (1113, TagType::StringArray), // PROVIDEVERSION
    (1114, TagType::Int32),       // OBSOLETEFLAGS
    (1115, TagType::StringArray), // OBSOLETEVERSION
    (1116, TagType::Int32),       // DIRINDEXES
    (1117, TagType::StringArray), // BASENAMES
    (1118, TagType::StringArray), // DIRNAMES
    (1124, TagType::String),      // PAYLOADFORMAT
    (1125, TagType::String),      // PAYLOADCOMPRESSOR
    (1127, TagType::Int32),       // INSTALLCOLOR
    (1128, TagType::Int32),       // INSTALLTID
    (1140, TagType::Int32),       // FILECOLORS
    (5046, TagType::StringArray), // RECOMMENDNAME
    (5049, TagType::StringArray), // SUGGESTNAME
    (5052, TagType::StringArray), // SUPPLEMENTNAME
    (5055, TagType::StringArray), // ENHANCENAME
    (5069, TagType::StringArray), // FILETRIGGERNAME
    (5070, TagType::Int32),       // FILETRIGGERINDEX
    (5079, TagType::StringArray), // TRANSFILETRIGGERNAME
    (5080, TagType::Int32),       // TRANSFILETRIGGERINDEX
];

/// Tags rpm's header verification reads, which must have exactly this type.
const VERIFIED: &[(u32, TagType)] = &[
    (257, TagType::Int32),  // SIGSIZE
    (261, TagType::Bin),    // SIGMD5
    (267, TagType::Bin),    // DSAHEADER
    (268, TagType::Bin),    // RSAHEADER
    (269, TagType::String), // SHA1HEADER
    (270, TagType::Int64),  // LONGSIGSIZE
    (273, TagType::String), // SHA256HEADER
];

fn is_string(t: TagType) -> bool {
    matches!(t, TagType::String | TagType::StringArray | TagType::I18nString)
}

/// Whether rpm's header import would reject `tag` stored as `ty` (hdrchkTagType).
pub fn mismatched(tag: u32, ty: TagType) -> bool {
    if let Some((_, exact)) = VERIFIED.iter().find(|(t, _)| *t == tag) {
        return *exact != ty;
    }
    match TABLE.iter().find(|(t, _)| *t == tag) {
        None => false,
        Some((_, declared)) => *declared != ty && !(is_string(*declared) && is_string(ty)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_tags_must_keep_their_type_but_strings_are_interchangeable() {
        assert!(mismatched(273, TagType::Bin), "SHA256HEADER re-typed STRING → BIN");
        assert!(mismatched(273, TagType::StringArray), "a verified digest must be exactly a string");
        assert!(mismatched(257, TagType::Int16));
        assert!(!mismatched(1004, TagType::String));
        assert!(mismatched(1030, TagType::Int32));
        assert!(!mismatched(1030, TagType::Int16));
        assert!(!mismatched(999_999, TagType::Bin), "unknown tags pass");
        assert!(TABLE.windows(2).all(|w| w[0].0 < w[1].0), "sorted, no duplicates");
        assert!(VERIFIED.windows(2).all(|w| w[0].0 < w[1].0), "sorted, no duplicates");
    }
}
