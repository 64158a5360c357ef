//! `passerelle.product.v1.ProductService`.

use std::sync::Arc;

use passerelle_adapters::AdapterKind;
use passerelle_domain::Product;
use passerelle_proto::convert;
use passerelle_proto::product::v1 as pb;
use pb::product_service_server::ProductService;
use tonic::{Request, Response, Status};

use super::call::serve;
use super::parse::Violations;
use crate::identity::Auth;
use crate::service::approvals::Proposed;
use crate::service::{Broker, ServiceError};
use crate::store::PutProduct;

/// Most products in one PutProducts call.
const MAX_PRODUCTS: usize = 100;

pub struct ProductApi {
    broker: Arc<Broker>,
}

impl ProductApi {
    pub fn new(broker: Arc<Broker>) -> Self {
        ProductApi { broker }
    }
}

// Every product must belong to a mutuelle the caller acts for; the call is
// audited under the first one's.
call!(pb::PutProductsRequest, "PutProducts", "mutuelle",
    |m| claimed: m.products.first().map_or("", |p| p.mutuelle_id.as_str()),
    scope(auth, dir) -> Auth: {
        m.products
            .iter()
            .try_for_each(|p| super::auth::mutuelle_scope(auth, &p.mutuelle_id).map(|_| ()))?;
        Ok(auth.clone())
    },
    subject: format!("{}/products", m.claimed()));
mutuelle_call!(pb::ListProductsRequest, "ListProducts", |m| format!(
    "{}/products",
    m.mutuelle_id
));

#[tonic::async_trait]
impl ProductService for ProductApi {
    async fn put_products(
        &self,
        request: Request<pb::PutProductsRequest>,
    ) -> Result<Response<pb::PutProductsResponse>, Status> {
        serve(&self.broker, request, |msg, auth| async move {
            let mut v = Violations::new();
            if msg.products.is_empty() || msg.products.len() > MAX_PRODUCTS {
                v.add("products", format!("give 1 to {MAX_PRODUCTS} products"));
            }
            let mut products = Vec::with_capacity(msg.products.len());
            for (i, p) in msg.products.into_iter().enumerate() {
                let p = passerelle_proto::parse::product(&mut v, i, p);
                match self.broker.partners().find(|x| x.id == p.mutuelle_id) {
                    None => v.add(
                        format!("products[{i}].mutuelle_id"),
                        format!("unknown mutuelle {:?}", p.mutuelle_id),
                    ),
                    Some(x) if x.kind != AdapterKind::Rules => v.add(
                        format!("products[{i}].mutuelle_id"),
                        format!(
                            "{} is a {} partner, which keeps its own products",
                            p.mutuelle_id,
                            x.kind.as_str()
                        ),
                    ),
                    Some(_) => {}
                }
                if products.iter().any(|o: &Product| {
                    o.mutuelle_id == p.mutuelle_id && o.id == p.id && o.version == p.version
                }) {
                    v.add(
                        format!("products[{i}].version"),
                        "listed twice in this call",
                    );
                }
                products.push(p);
            }
            if let Some(i) = products
                .iter()
                .position(|p| p.mutuelle_id != products[0].mutuelle_id)
            {
                v.add(
                    format!("products[{i}].mutuelle_id"),
                    "one mutuelle per call: each mutuelle approves its own products",
                );
            }
            v.finish(())?;
            let results = match self.broker.propose_products(&auth, products).await? {
                Proposed::Done(r) => r,
                Proposed::Waiting(p) => return Err(ServiceError::approval_required(&p)),
            };
            Ok(pb::PutProductsResponse {
                results: results
                    .into_iter()
                    .map(|r| {
                        match r {
                            PutProduct::Inserted => "inserted",
                            PutProduct::Replaced => "replaced",
                            PutProduct::Unchanged => "unchanged",
                        }
                        .to_string()
                    })
                    .collect(),
            })
        })
        .await
    }

    async fn list_products(
        &self,
        request: Request<pb::ListProductsRequest>,
    ) -> Result<Response<pb::ListProductsResponse>, Status> {
        serve(&self.broker, request, |msg, ()| async move {
            let mut v = Violations::new();
            v.id("mutuelle_id", &msg.mutuelle_id);
            v.finish(())?;
            let products = self.broker.list_products(&msg.mutuelle_id).await?;
            Ok(pb::ListProductsResponse {
                products: products
                    .iter()
                    .map(|(p, used)| convert::product_to_pb(p, *used))
                    .collect(),
            })
        })
        .await
    }
}
