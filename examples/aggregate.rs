//! One request fanned out to three backends, with no infrastructure:
//!
//! ```text
//! cargo run --example aggregate
//! ```
//!
//! A product page needs the product (required), its reviews (optional) and
//! its stock (optional). The reviews backend is slow and the stock backend
//! is down, so after the reviews' 100 ms deadline the page goes out with the
//! product only, and the meta tells the frontend which parts are missing and
//! why. Then the product backend fails too, and the whole request fails at
//! once, without waiting for the slow reviews.

use std::time::{Duration, Instant};

use bff_aggregate::{Aggregate, ErrorKind, Source, SourceError};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let page = Aggregate::new(Duration::from_millis(250));
    // The product backend answers in 20 ms, or fails when `down`.
    let product = |down: bool| {
        Source::required(
            "product",
            Duration::from_millis(200),
            move |_call| async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                if down {
                    Err(SourceError::msg(ErrorKind::Transient, "503 from catalog"))
                } else {
                    Ok("Teapot, 1.2 l")
                }
            },
        )
    };
    // The reviews backend takes a second, ten times its deadline.
    let reviews = || {
        Source::optional("reviews", Duration::from_millis(100), |_call| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok::<_, SourceError>(vec!["Pours well."])
        })
    };
    // The stock backend is down.
    let stock = Source::optional("stock", Duration::from_millis(100), |_call| async {
        Err::<u32, _>(SourceError::msg(ErrorKind::Transient, "connection refused"))
    });

    let started = Instant::now();
    let assembled = page.run((product(false), reviews(), stock)).await?;
    let (product_part, reviews_part, stock_part) = assembled.parts;
    println_line(&format!("answered in {:?}", started.elapsed()));
    println_line(&format!("product: {product_part}"));
    println_line(&format!("reviews: {reviews_part:?}"));
    println_line(&format!("stock:   {stock_part:?}"));
    let meta = serde_json::to_string_pretty(&assembled.meta)?;
    println_line(&format!("meta:    {meta}"));

    let started = Instant::now();
    if let Err(error) = page.run((product(true), reviews())).await {
        println_line(&format!("\nfailed in {:?}: {error}", started.elapsed()));
        let meta = serde_json::to_string(error.meta())?;
        println_line(&format!("meta:    {meta}"));
    }
    Ok(())
}

fn println_line(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{line}");
}
