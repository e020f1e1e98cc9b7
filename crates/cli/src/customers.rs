//! `lifecycle customers erase|export`: the data rights on the store
//! directly (the server offers the same as `DELETE /api/v1/customers/{id}`
//! and `GET /api/v1/customers/{id}/export`).

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;
use lifecycle_store::Store;

use crate::{DbArg, input_err};

#[derive(Subcommand, Debug)]
pub enum CustomersCommand {
    /// Erase a person's personal data everywhere (events, traits, identities, message content);
    /// their orders, scores and journey records stay under a random pseudonym
    Erase {
        /// Customer id, alias (userId or anonymousId) or email address
        id: String,
        #[command(flatten)]
        db: DbArg,
    },
    /// Print (or write) everything held on a customer as JSON
    Export {
        /// Customer id, alias (userId or anonymousId) or email address
        id: String,
        #[command(flatten)]
        db: DbArg,
        /// Write the JSON here instead of the standard output
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

fn resolve(store: &mut Store, id: &str) -> Result<String> {
    store
        .find_customer(id)?
        .ok_or_else(|| input_err(format!("no customer {id}")))
}

pub fn run(command: CustomersCommand) -> Result<()> {
    match command {
        CustomersCommand::Erase { id, db } => {
            let mut store = db.open_existing()?;
            let customer = resolve(&mut store, &id)?;
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            let e = store.erase_customer(&customer, now_ms)?;
            eprintln!(
                "erased {id}: {} events and {} identities deleted, {} messages cleared; {} orders and {} journey enrolments kept under a pseudonym",
                e.events,
                e.identities,
                e.messages_cleared,
                e.orders_kept_anonymously,
                e.enrolments_kept_anonymously
            );
            Ok(())
        }
        CustomersCommand::Export { id, db, out } => {
            let mut store = db.open_existing()?;
            let customer = resolve(&mut store, &id)?;
            let v = store.export_customer(&customer)?;
            let text = serde_json::to_string_pretty(&v)?;
            match out {
                Some(path) => std::fs::write(&path, text + "\n")
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
                None => println!("{text}"),
            }
            Ok(())
        }
    }
}
