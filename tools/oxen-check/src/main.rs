//! `oxen-check FILE [--features a,b | --no-default-features] [--json]
//! [--module ADDR=FILE]… [--uboot-script FILE] [--image FILE]`.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use oxen_check::{Options, report};

const USAGE: &str = "usage: oxen-check FILE.dtb|FILE.dts [options]
  --features a,b           the image's features (default: the board's default image)
  --no-default-features    an image with no features
  --json                   the report as JSON
  --module ADDR=FILE       the contents of the module loaded at ADDR (repeatable)
  --uboot-script FILE      a U-Boot boot script: its loads, fdt edits and booti
  --image FILE             the hypervisor Image (for its header)";

fn parse(args: &[String]) -> Result<(Options, bool), String> {
    let mut opts = Options::default();
    let mut json = false;
    let mut input = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |what: &str| {
            it.next()
                .cloned()
                .ok_or(format!("{a} needs {what}\n{USAGE}"))
        };
        match a.as_str() {
            "--json" => json = true,
            "--features" => {
                let list = value("a list of features")?;
                opts.features.get_or_insert_with(Vec::new).extend(
                    list.split([',', ' '])
                        .filter(|s| !s.is_empty())
                        .map(String::from),
                );
            }
            "--no-default-features" => {
                opts.features.get_or_insert_with(Vec::new);
            }
            "--module" => {
                let v = value("ADDR=FILE")?;
                let (addr, file) = v
                    .split_once('=')
                    .ok_or(format!("--module {v}: expected ADDR=FILE"))?;
                let t = addr.trim_start_matches("0x");
                let addr = u64::from_str_radix(t, 16)
                    .map_err(|_| format!("--module {v}: {addr} is not a hex address"))?;
                opts.modules.push((addr, PathBuf::from(file)));
            }
            "--uboot-script" => opts.uboot_script = Some(value("a file")?.into()),
            "--image" => opts.image = Some(value("a file")?.into()),
            "-h" | "--help" => return Err(USAGE.into()),
            s if s.starts_with('-') => return Err(format!("unknown option {s}\n{USAGE}")),
            file => {
                if input.replace(PathBuf::from(file)).is_some() {
                    return Err(format!("one file at a time\n{USAGE}"));
                }
            }
        }
    }
    opts.input = input.ok_or(USAGE)?;
    Ok((opts, json))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (opts, json) = match parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match oxen_check::run(&opts) {
        Ok(rep) => {
            let out = if json {
                serde_json::to_string_pretty(&report::json(&rep)).unwrap_or_default() + "\n"
            } else {
                report::text(&rep)
            };
            // A reader that stops early (`| head`) is not an error.
            let _ = std::io::stdout().write_all(out.as_bytes());
            ExitCode::from(rep.exit_code())
        }
        Err(e) => {
            eprintln!("oxen-check: {e}");
            ExitCode::from(2)
        }
    }
}
