use clap::Parser;
use roster::cli::{Cli, Command};
use roster::startup::{Application, shutdown_signal};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Schema) = cli.command {
        print!("{}", roster::graphql::sdl());
        return std::process::ExitCode::SUCCESS;
    }
    roster::telemetry::init(cli.config.log_format);
    if let Some(Command::ImportDjango(args)) = &cli.command {
        return roster::cli::import_django::run(&cli.config, args).await;
    }
    if let Some(Command::Migrate) = &cli.command {
        return roster::cli::migrate::run(&cli.config).await;
    }
    if let Some(Command::Outbox(command)) = &cli.command {
        return roster::cli::outbox::run(&cli.config, command).await;
    }
    if let Some(Command::Webhooks(command)) = &cli.command {
        return roster::cli::webhooks::run(&cli.config, command).await;
    }
    if let Some(Command::Keys(command)) = &cli.command {
        return roster::cli::keys::run(&cli.config, command).await;
    }
    if let Some(Command::Createsuperuser {
        username,
        email,
        no_input,
    }) = &cli.command
    {
        return roster::cli::users::create_superuser(&cli.config, username, email, *no_input).await;
    }
    if let Some(Command::Apikey(command)) = &cli.command {
        return roster::cli::apikey::run(&cli.config, command).await;
    }
    if let Some(Command::Changepassword { username, no_input }) = &cli.command {
        return roster::cli::users::change_password(&cli.config, username, *no_input).await;
    }
    if let Some(Command::Users(command)) = &cli.command {
        let (username, active) = match command {
            roster::cli::UsersCommand::Deactivate { username } => (username, false),
            roster::cli::UsersCommand::Reactivate { username } => (username, true),
            roster::cli::UsersCommand::ResetMfa { username } => {
                return roster::cli::users::reset_mfa(&cli.config, username).await;
            }
        };
        return roster::cli::users::set_active(&cli.config, username, active).await;
    }
    let app = match Application::build(cli.config).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!("{e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let addr = app.local_addr();
    tracing::info!("roster listening on http://{addr}/graphql");
    eprintln!("roster is ready: GraphiQL at http://{addr}/graphql");
    match app.run_until(shutdown_signal()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "server failed");
            std::process::ExitCode::FAILURE
        }
    }
}
