//! `tagpilot-supervisor`: the process supervisor of tagpilot's images, ContainerPilot v3
//! compatible (it answers to the name `containerpilot` too). See `tagpilot::supervisor`.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(tagpilot::supervisor::cli::main(&args));
}
