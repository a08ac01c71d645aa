fn main() -> std::process::ExitCode {
    stanzad::cli::run()
}
