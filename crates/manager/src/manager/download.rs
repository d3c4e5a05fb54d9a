//! Progress of a range download ([`ManagedLog::download`]) for the UI, in the shape of
//! the whole-log [`DownloadProgress`].

use nova_hypercore_managed_core::Download;

use super::{DownloadProgress, HypercoreManager, Result};
use crate::log::ManagedLog;

impl HypercoreManager {
    /// How far along `download` (a [`ManagedLog::download`] of log `log_name`) is:
    /// `have` blocks of its range stored, of `total` in the range, with the receive
    /// counters of the whole log's sessions in this process (as
    /// [`download_progress`](Self::download_progress)). To wait for it, use
    /// [`Download::done`]; to stop it, [`Download::cancel`] or drop it.
    pub async fn download_range_progress(
        &self,
        log_name: &str,
        download: &Download,
    ) -> Result<DownloadProgress> {
        let log: ManagedLog = self.get_log(log_name).await?;
        let progress = download.progress().await?;
        let transfer = self.hub.stats.get(&log.discovery_key());
        Ok(DownloadProgress {
            have: progress.held,
            total: progress.total,
            blocks_received: transfer.blocks_received,
            bytes_per_second: transfer.receive_rate(),
        })
    }
}
