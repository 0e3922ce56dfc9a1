use clap::Parser;

fn main() {
    let cli = tagpilot::cli::Cli::parse();
    tagpilot::stop::install();
    if let Err(err) = tagpilot::commands::run(cli) {
        eprintln!("error: {err}");
        std::process::exit(err.code as i32);
    }
}
