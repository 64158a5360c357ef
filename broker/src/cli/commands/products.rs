//! `passerelle products ...`: a rules mutuelle's products.

use super::*;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ProductsFile {
    products: Vec<Product>,
}

pub(super) fn read_products(file: &std::path::Path) -> Result<Vec<Product>, Failure> {
    let text =
        std::fs::read_to_string(file).map_err(|e| Failure(format!("{}: {e}", file.display())))?;
    let parsed: ProductsFile = match file.extension().and_then(|e| e.to_str()) {
        Some("json") => serde_json::from_str(&text).map_err(|e| e.to_string()),
        Some("toml") => toml::from_str(&text).map_err(|e| e.to_string()),
        _ => Err("the file must end in .toml or .json".into()),
    }
    .map_err(|e| Failure(format!("{}: {}", file.display(), e.trim_end())))?;
    Ok(parsed.products)
}

pub(super) async fn products(ctx: &Ctx, cmd: ProductsCmd) -> Out {
    let mut c = product::product_service_client::ProductServiceClient::new(ctx.channel.clone());
    let l = ctx.lang;
    match cmd {
        ProductsCmd::Import { file } => {
            let products: Vec<product::Product> = read_products(&file)?
                .iter()
                .map(|p| passerelle_proto::convert::product_to_pb(p, false))
                .collect();
            let mutuelle = products
                .first()
                .map(|p| p.mutuelle_id.clone())
                .unwrap_or_default();
            let r = match c
                .put_products(product::PutProductsRequest {
                    products: products.clone(),
                })
                .await
            {
                Ok(r) => r.into_inner(),
                Err(s) => return proposed(ctx, &mutuelle, s),
            };
            if ctx.json {
                ctx.print_with(
                    &r,
                    "products",
                    passerelle_proto::json::to_json(&product::PutProductsRequest { products })["products"].take(),
                );
                return Ok(());
            }
            let mut t = Table::new(l, &["mutuelle", "product", "version", "result"]).right(&[2]);
            for (p, res) in products.iter().zip(&r.results) {
                t.row(vec![
                    p.mutuelle_id.clone(),
                    p.product_id.clone(),
                    p.version.to_string(),
                    res.clone(),
                ]);
            }
            out!("{}", t.render());
        }
        ProductsCmd::List { partner } => {
            let r = c
                .list_products(product::ListProductsRequest {
                    mutuelle_id: partner,
                })
                .await
                .map_err(|s| status_failure(s, None))?
                .into_inner();
            if ctx.json {
                ctx.print(&r);
                return Ok(());
            }
            let mut t = Table::new(
                l,
                &["product", "version", "valid from", "valid to", "in use"],
            )
            .right(&[1]);
            for p in &r.products {
                t.row(vec![
                    format!("{} ({})", p.product_id, p.name),
                    p.version.to_string(),
                    l.catalogue().iso_date(&p.valid_from),
                    l.catalogue().iso_date(&p.valid_to),
                    l.t(if p.used { "yes" } else { "no" }).to_string(),
                ]);
            }
            out!("{}", t.render());
        }
    }
    Ok(())
}
