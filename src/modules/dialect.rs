//! The opt-in dialect (docs/dialect.md, schemas/dialect.xsd), offered as a stream feature.
//! Its vocabulary, and the translations between it and standard XMPP, are in
//! `xmpp::dialect`; a session that sends `<enable/>` gets the dialect from then on.

use crate::core::module::{Module, Registrar};
use std::sync::Arc;

pub use crate::xmpp::dialect::NS;

pub struct Dialect;

impl Module for Dialect {
    fn name(&self) -> &'static str {
        "stanzad dialect"
    }

    fn register(self: Arc<Self>, api: &mut Registrar) {
        api.stream_feature(&format!("<dialect xmlns='{NS}'/>"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::module::Modules;
    use crate::xml::Element;

    /// The feature is the golden example of schemas/examples/ (validated against
    /// schemas/dialect.xsd in CI).
    #[test]
    fn the_offered_feature_is_the_golden_example() {
        let mut modules = Modules::default();
        modules.add(&crate::config::Config::default(), Dialect);
        let offered: Element = modules.stream_features().parse().expect("the feature");
        let golden: Element = include_str!("../../schemas/examples/feature.xml").trim().parse().expect("golden");
        crate::xmpp::dialect::tests::assert_same_shape(&offered, &golden);
    }
}
