//! Products: the rule sets a rules mutuelle declares (versioned; a version
//! used by claims never changes, the store refuses it).

use passerelle_domain::Product;

use super::{Broker, ServiceError};

impl Broker {
    // Publishing product versions needs two people: see
    // `service::approvals` (propose_products, approve).

    /// A mutuelle's products, each with whether claims use it.
    pub async fn list_products(
        &self,
        mutuelle_id: &str,
    ) -> Result<Vec<(Product, bool)>, ServiceError> {
        Ok(self.store.list_products(mutuelle_id).await?)
    }
}
