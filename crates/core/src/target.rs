//! Sites and the targets that live in them.

use std::fmt;
use std::sync::Arc;

/// The name of a hot site (a data center of the provider or of the contact center).
///
/// Cheap to clone: names are shared by every target, event and metric of the site.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SiteName(Arc<str>);

impl SiteName {
    /// Wraps a site name.
    pub fn new(name: &str) -> SiteName {
        SiteName(Arc::from(name))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SiteName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SiteName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

/// One thing hotsite sends work to at a site: an SMSC instance, a trunk, a URL.
///
/// Displayed as `site/name`, the form used in logs, metrics and the API.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target {
    /// The site the target belongs to.
    pub site: SiteName,
    /// The target's name, unique within its site.
    pub name: Arc<str>,
}

impl Target {
    /// A target named `name` at `site`.
    pub fn new(site: &str, name: &str) -> Target {
        Target {
            site: SiteName::new(site),
            name: Arc::from(name),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.site, self.name)
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}
