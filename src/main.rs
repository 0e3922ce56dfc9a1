use clap::Parser;

fn main() {
    let cli = tagpilot::cli::Cli::parse();
    tagpilot::stop::install();
    let env = tagpilot::env::Env::capture();
    if let Err(err) = tagpilot::commands::run(cli, &env) {
        eprintln!("error: {err}");
        std::process::exit(err.code as i32);
    }
}
