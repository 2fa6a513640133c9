//! The MasterDeal domain: master deals, media plans, proposals, contracts and campaigns,
//! their migrations, the `masterdeal` connector and the REST and GraphQL APIs.
//!
//! Empty until the domain's own issue: the engine it plugs into comes first.
