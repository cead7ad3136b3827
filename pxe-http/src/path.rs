//! Request paths confined to the root: a pure function of the request's path.

use std::path::PathBuf;

use crate::error::PathError;
use crate::percent;

/// The path below the root that a request path names: percent-decoded, `.` and empty
/// segments dropped. A `..` segment in any spelling (`..`, `%2e%2E`, `.%2e`), a NUL, a
/// backslash or invalid UTF-8 is refused rather than interpreted.
pub fn relative_path(request_path: &str) -> Result<PathBuf, PathError> {
    if !request_path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    let decoded = percent::decode(request_path).map_err(|offset| PathError::Encoding { offset })?;
    let decoded = std::str::from_utf8(&decoded).map_err(|_| PathError::Character)?;
    let mut relative = PathBuf::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => return Err(PathError::Parent),
            s if s.contains(['\0', '\\']) => return Err(PathError::Character),
            s => relative.push(s),
        }
    }
    Ok(relative)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_below_the_root() {
        assert_eq!(relative_path("/a/./b//c").unwrap(), PathBuf::from("a/b/c"));
        assert_eq!(relative_path("/").unwrap(), PathBuf::new());
        assert_eq!(relative_path("/a%20b").unwrap(), PathBuf::from("a b"));
        for bad in [
            "/..",
            "/a/../b",
            "/%2e%2e/x",
            "/.%2E/x",
            "/a/%2e./b",
            "/a%2f..%2fb",
        ] {
            assert_eq!(relative_path(bad), Err(PathError::Parent), "{bad}");
        }
        for bad in ["/a%00b", "/a\\..\\b", "/%5c..", "/%ff"] {
            assert_eq!(relative_path(bad), Err(PathError::Character), "{bad}");
        }
        assert_eq!(relative_path("a"), Err(PathError::NotAbsolute));
        assert_eq!(
            relative_path("/%zz"),
            Err(PathError::Encoding { offset: 1 })
        );
    }

    proptest::proptest! {
        #[test]
        fn relative_paths_have_no_parent(path in "/[a-z./%25e2E]{0,20}") {
            if let Ok(relative) = relative_path(&path) {
                proptest::prop_assert!(relative
                    .components()
                    .all(|c| matches!(c, std::path::Component::Normal(_))));
            }
        }
    }
}
