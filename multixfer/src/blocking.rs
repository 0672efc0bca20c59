//! Blocking transfers, for programs with no event loop (libcurl's `curl_easy_perform`, and a
//! multi handle run to the end): the transfers run on the calling thread, on an evcore `Loop`
//! of their own, with every engine option and limit as usual.
//!
//! ```no_run
//! use multixfer::{blocking, Easy, Options};
//!
//! let page = blocking::get("http://127.0.0.1:8080/")?;
//! println!("{} {} bytes", page.status(), page.body.len());
//! let all = blocking::fetch_all(
//!     (0..100).map(|i| Easy::get(format!("http://127.0.0.1:8080/f{i}")).private(i)),
//!     Options::default(),
//! )?;
//! assert_eq!(all.len(), 100);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use evcore::Loop;

use crate::drive::Driver;
use crate::{Done, Easy, Multi, MultiError, Options, Response, XferError};

/// Why a blocking transfer gave no response.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The engine itself could not run (epoll could not be created, say).
    #[error(transparent)]
    Engine(#[from] MultiError),
    /// The transfer failed.
    #[error(transparent)]
    Transfer(#[from] XferError),
}

/// `curl_easy_perform` of a GET: the response, or how it failed.
pub fn get(url: impl Into<String>) -> Result<Response, Error> {
    perform(Easy::get(url))
}

/// `curl_easy_perform`: runs one transfer to its end on this thread.
pub fn perform<T>(easy: Easy<T>) -> Result<Response, Error> {
    let done = fetch_all([easy], Options::default())?;
    match done.into_iter().next() {
        Some(d) => Ok(d.result?),
        None => Err(Error::Transfer(XferError::Cancelled)),
    }
}

/// Runs every transfer to its end, concurrently, within the limits of `opts`; returns each
/// one's outcome in the order they finished, with its private value.
pub fn fetch_all<T>(
    transfers: impl IntoIterator<Item = Easy<T>>,
    opts: Options,
) -> Result<Vec<Done<T>>, MultiError> {
    let mut multi: Multi<T> = Multi::with_options(opts)?;
    for easy in transfers {
        multi.add(easy);
    }
    let mut lp = Loop::new()?;
    let mut done = Vec::new();
    Driver::new().run(&mut multi, &mut lp, |d| done.push(d))?;
    Ok(done)
}
