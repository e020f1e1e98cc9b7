//! `lifecycle serve` and `lifecycle keys create`.

use anyhow::Result;
use clap::{Args, Subcommand};
use lifecycle_store::{KeyKind, Store, StoreUrl};

use crate::input_err;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The store: sqlite://PATH (embedded; created if missing)
    #[arg(long, default_value = "sqlite://lifecycle.db", value_name = "URL")]
    pub db: String,
    /// Address to listen on (port 0: any free port, printed on start)
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub listen: String,
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Create an API key and print it (once: only its hash is stored)
    Create {
        /// public (on-site messages), write (event ingestion /v1/*) or secret (API and admin)
        #[arg(long)]
        kind: String,
        /// The store
        #[arg(long, default_value = "sqlite://lifecycle.db", value_name = "URL")]
        db: String,
    },
}

pub fn serve(args: ServeArgs) -> Result<()> {
    let url = StoreUrl::parse(&args.db).map_err(|e| input_err(e.to_string()))?;
    lifecycle_server::serve(&url, &args.listen, |addr| {
        // The first line of output, for scripts and tests.
        println!("listening on http://{addr}");
    })?;
    Ok(())
}

pub fn keys(command: KeysCommand) -> Result<()> {
    match command {
        KeysCommand::Create { kind, db } => {
            let kind = KeyKind::parse(&kind).ok_or_else(|| {
                input_err(format!("--kind: \"{kind}\" is not public, write or secret"))
            })?;
            let url = StoreUrl::parse(&db).map_err(|e| input_err(e.to_string()))?;
            let key = Store::open(&url)?.create_key(kind)?;
            println!("{key}");
            eprintln!(
                "{} key created in {db}; it is shown only now (the store keeps its hash)",
                kind.name()
            );
            Ok(())
        }
    }
}
