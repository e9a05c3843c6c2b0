//! The `eltrix` binary: loads the configuration, sets up logging and runs
//! the server.

use eltrix::{config, server};

use clap::Parser;

// Buffers allocated on a shard thread are freed on its commit thread. glibc
// malloc spent a quarter of the send path's CPU time on that traffic.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = config::Cli::parse();
    let config = match config::Config::load(&cli) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("eltrix: {error}");
            std::process::exit(2);
        }
    };
    init_logging(&config);
    if cli.rotate_signing_key {
        rotate_signing_key(&config);
        return;
    }
    if let Some(username) = &cli.create_admin {
        create_admin(&config, username, cli.password_file.as_deref());
        return;
    }
    if let Err(error) = server::run(config) {
        tracing::error!(%error, "server failed");
        std::process::exit(1);
    }
}

fn rotate_signing_key(config: &config::Config) {
    let now_ms = eltrix::shard::now_millis();
    if !config.data_dir.join("signing.key").exists() {
        eprintln!(
            "eltrix: no signing key in {} to rotate; start the server once to create one",
            config.data_dir.display()
        );
        std::process::exit(1);
    }
    // Opening the store fails while a server uses the data directory. That
    // server would keep signing with the old key until it restarts.
    if let Err(error) = eltrix::store::Store::open(&config.data_dir) {
        eprintln!("eltrix: {error}");
        std::process::exit(1);
    }
    let rotated = eltrix::room::keys::rotate(&config.data_dir, now_ms);
    match rotated {
        Ok((old_id, new_id)) => {
            println!("signing key {new_id} replaces {old_id}, now listed in old_verify_keys");
        }
        Err(error) => {
            eprintln!(
                "eltrix: failed to rotate the signing key in {}: {error}",
                config.data_dir.display()
            );
            std::process::exit(1);
        }
    }
}

fn create_admin(config: &config::Config, username: &str, password_file: Option<&std::path::Path>) {
    use eltrix::api::admin::first_admin;

    let created = first_admin::read_password(password_file)
        .and_then(|password| first_admin::create_first_admin(config, username, password));
    match created {
        Ok(user_id) => println!("created server admin {user_id}"),
        Err(error) => {
            eprintln!("eltrix: failed to create the admin account: {error}");
            std::process::exit(1);
        }
    }
}

fn init_logging(config: &config::Config) {
    use std::io::IsTerminal as _;

    // The storage engine and the auth rules log routine steps at info; keep
    // them to warnings unless the filter names them.
    let directives = format!(
        "fjall=warn,lsm_tree=warn,ruma_state_res=warn,{}",
        config.log
    );
    let filter = tracing_subscriber::EnvFilter::try_new(directives)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if config.log_json {
        builder.json().init();
    } else {
        builder.init();
    }
}
