//! The settings of money movements.

use clap::Args;
use rust_decimal::Decimal;

use crate::money::Amount;

/// Limits on money movements.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Money")]
pub struct MoneyArgs {
    /// Largest amount of one deposit, in the wallet's currency (a decimal,
    /// e.g. `10000` or `2500.50`): a deposit is an admin's or manager's act,
    /// and a typing slip or a stolen manager account should not mint fortunes.
    #[arg(long, env = "BFF_DEPOSIT_MAX", default_value = "10000", value_parser = parse_max)]
    pub deposit_max: Decimal,
}

fn parse_max(value: &str) -> Result<Decimal, String> {
    Amount::parse(value.trim())
        .map(Amount::value)
        .map_err(|e| format!("{value:?} {e}"))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::config::{Cli, Command};

    #[test]
    fn the_deposit_cap_is_a_positive_amount() {
        let parse = |args: &[&str]| {
            let cli = Cli::try_parse_from(args)?;
            let Command::Serve(serve) = cli.into_command() else {
                panic!("serve")
            };
            Ok::<_, clap::Error>(serve.money.deposit_max)
        };
        assert_eq!(parse(&["bff"]).expect("default").to_string(), "10000");
        assert_eq!(
            parse(&["bff", "--deposit-max", "2500.50"])
                .expect("valid")
                .to_string(),
            "2500.50"
        );
        for bad in ["0", "-5", "1e3", "ten"] {
            assert!(parse(&["bff", "--deposit-max", bad]).is_err(), "{bad}");
        }
    }
}
