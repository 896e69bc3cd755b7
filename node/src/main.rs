//! `ibis-node`: run and administer an ibis node.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use ibis_node::{AuthMode, Durability, InitOptions, Network, ServeOptions};
use ibis_shared::DocumentId;

#[derive(Parser)]
#[command(name = "ibis-node", version, about = "Run and administer an ibis node")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a data dir: the organization's identity and documents, in a new network or
    /// joining one.
    Init {
        #[arg(long, env = "IBIS_DATA_DIR")]
        data_dir: PathBuf,
        #[arg(long)]
        org_name: String,
        #[arg(long)]
        org_id: Option<String>,
        /// city, league-of-cities, un-agency, ngo, government, research
        #[arg(long, default_value = "")]
        org_kind: String,
        #[arg(long, default_value = "")]
        city: String,
        /// ISO 3166 code
        #[arg(long, default_value = "")]
        country: String,
        #[arg(long, default_value = "")]
        website: String,
        /// Where people reach this node, as listed in the network directory.
        #[arg(long, default_value = "")]
        public_url: String,
        /// Start a new network with this name.
        #[arg(long, conflicts_with = "join")]
        network_name: Option<String>,
        /// Join the network whose directory is this automerge: URL (then exchange keys
        /// with `peer add` on both sides).
        #[arg(long, conflicts_with = "join_url")]
        join: Option<String>,
        /// Join through a partner node's invitation: its address (http(s)://host:port).
        #[arg(long, requires = "invite")]
        join_url: Option<String>,
        /// The invitation printed by `ibis-node invite` on the partner node (base64url:
        /// may start with a dash).
        #[arg(long, allow_hyphen_values = true)]
        invite: Option<String>,
        /// Print the node's identity as one JSON line.
        #[arg(long)]
        json: bool,
    },
    /// Write the catalogue to one archive: what partners may read (public practices,
    /// catalogues, the directory, events, plus the public practices as JSON), or with
    /// `--full` every document.
    Export {
        #[arg(long, env = "IBIS_DATA_DIR")]
        data_dir: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// Every document, internal practices (drafts, review comments) and the workspace
        /// included, and private contacts: keep it like a backup, never share it.
        #[arg(long)]
        full: bool,
    },
    /// Copy the database, key and configuration while the node runs.
    Backup {
        #[arg(long, env = "IBIS_DATA_DIR")]
        data_dir: PathBuf,
        /// An empty or absent directory.
        #[arg(long)]
        out: PathBuf,
    },
    /// Import an archive made by `export`, or practices from a JSON array or CSV file
    /// (with the node stopped).
    Import {
        #[arg(long, env = "IBIS_DATA_DIR")]
        data_dir: PathBuf,
        file: PathBuf,
        #[arg(long, value_enum)]
        format: Option<FormatArg>,
        /// Name recorded as the practices' creator.
        #[arg(long = "as", default_value = "import")]
        importer: String,
    },
    /// Manage the people who may log in.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage partner nodes: who this node dials and accepts, and what they may do.
    Peer {
        #[command(subcommand)]
        command: PeerCommand,
    },
    /// Make a single-use invitation for a new partner node; prints it once.
    Invite {
        #[arg(long, env = "IBIS_DATA_DIR")]
        data_dir: PathBuf,
        /// The organization being invited.
        name: String,
        /// The organization id it joins as (made from its name when absent); the partner
        /// is bound to it.
        #[arg(long)]
        org_id: Option<String>,
        #[arg(long, default_value_t = 7)]
        days: i64,
    },
    /// Print this node's public key (partners register it with `peer add --key`).
    Key {
        #[arg(long, env = "IBIS_DATA_DIR")]
        data_dir: PathBuf,
    },
    /// Serve the app and the sync endpoint, and replicate with partners.
    Serve {
        #[arg(long, env = "IBIS_DATA_DIR")]
        data_dir: PathBuf,
        #[arg(long, env = "IBIS_LISTEN")]
        listen: Option<SocketAddr>,
        /// A partner's sync URL (ws://host:port/sync); may repeat.
        #[arg(long = "peer", env = "IBIS_PEERS", value_delimiter = ',')]
        peers: Vec<String>,
        /// The built app (Trunk's dist directory).
        #[arg(long, env = "IBIS_APP_DIR")]
        app_dir: Option<PathBuf>,
        /// No accounts: every visitor acts as an admin (demos and tests only).
        #[arg(long, env = "IBIS_OPEN")]
        open: bool,
        #[arg(long, value_enum, env = "IBIS_DURABILITY")]
        durability: Option<DurabilityArg>,
        /// Organization name used if the data dir must first be initialized.
        #[arg(long, default_value = "ibis node")]
        org_name: String,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a member. The password comes from IBIS_PASSWORD, or one line on stdin with
    /// --password-stdin; otherwise one is generated and printed once.
    Add {
        #[arg(long, env = "IBIS_DATA_DIR")]
        data_dir: PathBuf,
        name: String,
        #[arg(long, value_enum, default_value = "editor")]
        role: RoleArg,
        #[arg(long)]
        password_stdin: bool,
    },
    List {
        #[arg(long, env = "IBIS_DATA_DIR")]
        data_dir: PathBuf,
    },
    /// Remove a member and end their sessions and tokens.
    Remove {
        #[arg(long, env = "IBIS_DATA_DIR")]
        data_dir: PathBuf,
        name: String,
    },
    /// Issue an API token for scripts (`/sync?token=…`); printed once.
    Token {
        #[arg(long, env = "IBIS_DATA_DIR")]
        data_dir: PathBuf,
        name: String,
        #[arg(long, default_value = "")]
        label: String,
        #[arg(long, default_value_t = 90)]
        days: i64,
    },
}

#[derive(Subcommand)]
enum PeerCommand {
    /// Register a partner node. With --url this node dials it; with --key it is
    /// authenticated (required for partners that dial in, unless the node runs --open).
    Add {
        #[arg(long, env = "IBIS_DATA_DIR")]
        data_dir: PathBuf,
        name: String,
        #[arg(long, default_value = "")]
        url: String,
        /// (Base64url: may start with a dash.)
        #[arg(long, default_value = "", allow_hyphen_values = true)]
        key: String,
        /// The organization (its directory id) the partner is: it may then change that
        /// organization's directory entry. Without it, the peer is a relay.
        #[arg(long, default_value = "")]
        org: String,
        /// What the partner may do here.
        #[arg(long, value_enum, default_value = "read-write")]
        access: AccessArg,
    },
    List {
        #[arg(long, env = "IBIS_DATA_DIR")]
        data_dir: PathBuf,
    },
    Remove {
        #[arg(long, env = "IBIS_DATA_DIR")]
        data_dir: PathBuf,
        name: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum RoleArg {
    Editor,
    Reviewer,
    Admin,
}

#[derive(Clone, Copy, ValueEnum)]
enum AccessArg {
    ReadWrite,
    Read,
    Write,
    None,
}

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    Json,
    Csv,
}

#[derive(Clone, Copy, ValueEnum)]
enum DurabilityArg {
    Full,
    Normal,
}

fn main() -> std::process::ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("IBIS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tower_http=warn"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // IBIS_LOG_FORMAT=json: one JSON object per line, for log collectors.
    if std::env::var("IBIS_LOG_FORMAT").is_ok_and(|f| f == "json") {
        logs.json().init();
    } else {
        logs.init();
    }
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    match cli.command {
        Command::Init {
            data_dir,
            org_name,
            org_id,
            org_kind,
            city,
            country,
            website,
            public_url,
            network_name,
            join,
            join_url,
            invite,
            json,
        } => {
            let invited = match (&join_url, &invite) {
                (Some(url), Some(invite)) => Some(ibis_node::federation::redeem_invitation(
                    url,
                    invite,
                    &org_name,
                    &data_dir,
                    &public_url,
                )?),
                _ => None,
            };
            // A partner's invitation says which organization id this node joins as.
            let org_id = match (&invited, org_id) {
                (Some(joined), Some(chosen))
                    if !joined.organization_id.is_empty() && joined.organization_id != chosen =>
                {
                    anyhow::bail!(
                        "the invitation is for organization id {}, not {chosen}",
                        joined.organization_id
                    )
                }
                (Some(joined), _) if !joined.organization_id.is_empty() => {
                    Some(joined.organization_id.clone())
                }
                (_, chosen) => chosen,
            };
            let network = match (join, &invited) {
                (_, Some(joined)) => Network::Join {
                    directory: DocumentId::parse_id_or_url(&joined.directory)
                        .context("the partner's directory")?,
                },
                (Some(url), None) => Network::Join {
                    directory: DocumentId::parse_id_or_url(&url).context("--join")?,
                },
                (None, None) => Network::New {
                    name: network_name.unwrap_or_else(|| "ibis network".into()),
                },
            };
            let info = ibis_node::init(&InitOptions {
                data_dir: data_dir.clone(),
                org_name,
                org_id,
                org_kind,
                city,
                country,
                website,
                public_url,
                network,
                auth: AuthMode::Accounts,
            })?;
            if let (Some(joined), Some(url)) = (&invited, &join_url) {
                let registry = ibis_node::registry::Registry::open(&data_dir)?;
                registry.add_peer(&ibis_node::registry::Peer {
                    name: joined.organization.clone(),
                    url: ibis_node::federation::sync_url_of(url),
                    public_key: joined.node_key.clone(),
                    organization: joined.inviter_organization.clone(),
                    acl: ibis_node::registry::Acl::FULL,
                })?;
            }
            if json {
                println!("{}", serde_json::to_string(&info)?);
            } else {
                println!(
                    "initialized {} for {} ({})\n  directory: {}\n  catalogue: {}",
                    data_dir.display(),
                    info.organization_name,
                    info.organization_id,
                    info.directory,
                    info.catalogue
                );
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Export {
            data_dir,
            out,
            full,
        } => {
            let form = if full {
                ibis_node::archive::Form::Full
            } else {
                ibis_node::archive::Form::Public
            };
            let exported = ibis_node::archive::export(&data_dir, &out, form)?;
            let manifest = &exported.manifest;
            println!(
                "exported {} documents ({} practices) to {}, {} form",
                manifest.documents,
                manifest.practices,
                out.display(),
                manifest.form.key()
            );
            if full {
                eprintln!(
                    "warning: {} holds drafts, review comments and private contacts; keep it like a backup and do not share it",
                    out.display()
                );
            } else {
                println!(
                    "left out {} documents partners may not read (internal practices, the workspace, drafts, documents of no ibis type)",
                    exported.left_out
                );
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Backup { data_dir, out } => {
            ibis_node::archive::backup(&data_dir, &out)?;
            println!("backed up {} to {}", data_dir.display(), out.display());
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Import {
            data_dir,
            file,
            format: _,
            importer: _,
        } if ibis_node::archive::is_archive(&file) => {
            let report = ibis_node::archive::import(&data_dir, &file)?;
            println!(
                "imported {} documents ({} practices) from a {} archive: {} new, {} merged",
                report.documents,
                report.practices,
                report.form.key(),
                report.new_documents,
                report.merged_documents
            );
            if !report.skipped.is_empty() {
                println!(
                    "skipped {} documents erased here (withdrawn by their organization):",
                    report.skipped.len()
                );
                for id in &report.skipped {
                    println!("  {}", id.url());
                }
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Import {
            data_dir,
            file,
            format,
            importer,
        } => {
            let format = match format {
                Some(FormatArg::Json) => ibis_node::import::Format::Json,
                Some(FormatArg::Csv) => ibis_node::import::Format::Csv,
                None => ibis_node::import::Format::from_path(&file).with_context(|| {
                    format!(
                        "cannot tell the format of {}; pass --format",
                        file.display()
                    )
                })?,
            };
            let report = ibis_node::import::import(&data_dir, &file, format, &importer)?;
            for line in ibis_node::import::describe(&report) {
                println!("{line}");
            }
            let failed = report.failed();
            println!(
                "{} imported, {failed} failed; {} placed on the map by their city",
                report.rows.len() - failed,
                report.placed
            );
            Ok(if failed == 0 {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::FAILURE
            })
        }
        Command::User { command } => user(command),
        Command::Peer { command } => peer(command),
        Command::Invite {
            data_dir,
            name,
            org_id,
            days,
        } => {
            let config = ibis_node::Config::load(&data_dir)?;
            let registry = open_registry(&data_dir)?;
            let org_id = org_id.unwrap_or_else(|| ibis_node::init::new_organization_id(&name));
            if org_id == config.organization.id {
                anyhow::bail!("{org_id} is this node's own organization");
            }
            let invite = registry.invite(&name, &org_id, days)?;
            println!("{invite}");
            eprintln!(
                "give {name} this invitation (valid {days} days, once; it joins as organization {org_id}) and this node's address; they run:\n  ibis-node init --join-url <this node's https address> --invite {invite} --org-name {name:?} …"
            );
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Key { data_dir } => {
            let key = ibis_node::federation::NodeKey::load_or_create(&data_dir)?;
            println!("{}", key.public());
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Serve {
            data_dir,
            listen,
            peers,
            app_dir,
            open,
            durability,
            org_name,
        } => {
            if !ibis_node::Config::path(&data_dir).exists() {
                let info = ibis_node::init(&InitOptions::new(&data_dir, &org_name))?;
                eprintln!(
                    "initialized {} for {} in a new network",
                    data_dir.display(),
                    info.organization_name
                );
            }
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let node = ibis_node::serve(ServeOptions {
                    data_dir,
                    listen,
                    peers,
                    app_dir,
                    open,
                    durability: durability.map(|d| match d {
                        DurabilityArg::Full => Durability::Full,
                        DurabilityArg::Normal => Durability::Normal,
                    }),
                    evict_idle_after_ms: None,
                    max_connections: None,
                })
                .await?;
                println!("ibis-node listening on {}", node.http_url());
                wait_for_signal().await;
                tracing::info!("shutting down");
                node.shutdown().await
            })?;
            Ok(std::process::ExitCode::SUCCESS)
        }
    }
}

fn open_registry(data_dir: &std::path::Path) -> anyhow::Result<ibis_node::registry::Registry> {
    let config = ibis_node::Config::load(data_dir)?;
    // Opening the store creates or migrates the tables the registry uses.
    ibis_node::store::Store::open(data_dir, config.node.durability)?;
    Ok(ibis_node::registry::Registry::open(data_dir)?)
}

fn user(command: UserCommand) -> anyhow::Result<std::process::ExitCode> {
    use ibis_shared::model::Role;
    match command {
        UserCommand::Add {
            data_dir,
            name,
            role,
            password_stdin,
        } => {
            let registry = open_registry(&data_dir)?;
            let (password, generated) = if password_stdin {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)?;
                (line.trim_end_matches(['\r', '\n']).to_owned(), false)
            } else if let Ok(password) = std::env::var("IBIS_PASSWORD") {
                (password, false)
            } else {
                (ibis_node::federation::nonce()?[..20].to_owned(), true)
            };
            let role = match role {
                RoleArg::Editor => Role::Editor,
                RoleArg::Reviewer => Role::Reviewer,
                RoleArg::Admin => Role::Admin,
            };
            registry.add_user(&name, role, &password)?;
            println!("added {name} ({role})");
            if generated {
                println!("password: {password}");
            }
        }
        UserCommand::List { data_dir } => {
            for user in open_registry(&data_dir)?.users()? {
                println!("{}\t{}", user.name, user.role);
            }
        }
        UserCommand::Remove { data_dir, name } => {
            open_registry(&data_dir)?.remove_user(&name)?;
            println!("removed {name}");
        }
        UserCommand::Token {
            data_dir,
            name,
            label,
            days,
        } => {
            println!(
                "{}",
                open_registry(&data_dir)?.issue_token(&name, &label, days)?
            );
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

fn peer(command: PeerCommand) -> anyhow::Result<std::process::ExitCode> {
    use ibis_node::registry::{Acl, Peer};
    match command {
        PeerCommand::Add {
            data_dir,
            name,
            url,
            key,
            org,
            access,
        } => {
            if org == ibis_node::Config::load(&data_dir)?.organization.id {
                anyhow::bail!("{org} is this node's own organization");
            }
            let acl = match access {
                AccessArg::ReadWrite => Acl::FULL,
                AccessArg::Read => Acl {
                    read: true,
                    write: false,
                },
                AccessArg::Write => Acl {
                    read: false,
                    write: true,
                },
                AccessArg::None => Acl {
                    read: false,
                    write: false,
                },
            };
            open_registry(&data_dir)?.add_peer(&Peer {
                name: name.clone(),
                url,
                public_key: key,
                organization: org,
                acl,
            })?;
            println!("added peer {name} ({})", acl.describe());
        }
        PeerCommand::List { data_dir } => {
            for p in open_registry(&data_dir)?.peers()? {
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    p.name,
                    if p.organization.is_empty() {
                        "(relay)"
                    } else {
                        &p.organization
                    },
                    if p.url.is_empty() { "-" } else { &p.url },
                    if p.public_key.is_empty() {
                        "-"
                    } else {
                        &p.public_key
                    },
                    p.acl.describe()
                );
            }
        }
        PeerCommand::Remove { data_dir, name } => {
            open_registry(&data_dir)?.remove_peer(&name)?;
            println!("removed peer {name}");
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
