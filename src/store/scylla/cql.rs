//! The CQL session with every statement prepared, and the few ways the
//! store runs them: a query for rows, a write, a lightweight transaction
//! (whether it applied), a batch. Each run is timed and counted by
//! statement ([`QueryMetrics`]). Runs on the driver's tokio runtime.

use std::time::Instant;

use scylla::client::session::Session;
use scylla::deserialize::row::DeserializeRow;
use scylla::errors::{DbError, ExecutionError, RequestAttemptError, WriteType};
use scylla::response::query_result::QueryResult;
use scylla::serialize::row::SerializeRow;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use scylla::value::{CqlValue, Row};

use super::query_metrics::{QueryMetrics, Sent};
use super::statements::{Stmt, ALL};
use crate::limits;
use crate::store::StoreError;

/// Values of one statement in a batch.
pub type Values = Box<dyn SerializeRow + Send + Sync>;

/// One statement of a batch with its values.
pub type Part = (Stmt, Values);

/// Boxes a statement's values for a batch.
pub fn part<V: SerializeRow + Send + Sync + 'static>(stmt: Stmt, values: V) -> Part {
    (stmt, Box::new(values))
}

/// A driver error, as the store reports it.
pub fn backend<E: std::error::Error + Send + Sync + 'static>(e: E) -> StoreError {
    StoreError::Backend(Box::new(e))
}

/// Whether `e` is a lightweight transaction's write timeout (outcome unknown).
fn is_cas_timeout(e: &StoreError) -> bool {
    let StoreError::Backend(source) = e else {
        return false;
    };
    matches!(
        source.downcast_ref::<ExecutionError>(),
        Some(ExecutionError::LastAttemptError(RequestAttemptError::DbError(
            DbError::WriteTimeout {
                write_type: WriteType::Cas,
                ..
            },
            _
        )))
    )
}

/// A lightweight transaction's outcome stayed unknown however often it was
/// asked (the database cannot finish a Paxos round).
#[derive(Debug, thiserror::Error)]
#[error("the outcome of {0} stayed unknown after {attempts} attempts", attempts = limits::SCYLLA_UNKNOWN_OUTCOME_ATTEMPTS)]
pub struct UnknownOutcome(&'static str);

/// A row the store cannot read.
pub fn corrupt(table: &'static str, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        table,
        reason: reason.into(),
    }
}

/// The session and its prepared statements.
pub struct Cql {
    session: Session,
    prepared: Vec<PreparedStatement>,
    metrics: QueryMetrics,
    /// Test builds: the statement whose applied LWTs are reported as of
    /// unknown outcome ([`super::session::ScyllaOptions::lost_outcome_of`]).
    lost_outcome_of: Option<&'static str>,
}

impl Cql {
    /// Prepares every statement (in the session's keyspace).
    pub async fn prepare(session: Session) -> Result<Self, StoreError> {
        let futures = ALL.iter().map(|s| session.prepare(s.cql()));
        let prepared = futures_util::future::join_all(futures)
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(backend)?;
        Ok(Self {
            session,
            prepared,
            metrics: QueryMetrics::new(),
            lost_outcome_of: None,
        })
    }

    /// Test builds: reports every applied LWT of the statement named
    /// `label` as of unknown outcome.
    pub fn lose_outcomes_of(&mut self, label: Option<&'static str>) {
        self.lost_outcome_of = label;
    }

    /// The statement's latency and error counts.
    pub fn metrics(&self) -> &QueryMetrics {
        &self.metrics
    }

    fn statement(&self, stmt: Stmt) -> Result<&PreparedStatement, StoreError> {
        self.prepared
            .get(stmt as usize)
            .ok_or_else(|| corrupt("statements", format!("{} is not prepared", stmt.label())))
    }

    /// Runs `stmt` once (unpaged).
    pub async fn exec(&self, stmt: Stmt, values: impl SerializeRow) -> Result<QueryResult, StoreError> {
        let prepared = self.statement(stmt)?;
        let started = Instant::now();
        let result = self.session.execute_unpaged(prepared, values).await;
        self.metrics
            .record(stmt, Sent::Single, started.elapsed(), result.is_err());
        result.map_err(backend)
    }

    /// The rows `stmt` returns.
    pub async fn rows<R>(&self, stmt: Stmt, values: impl SerializeRow) -> Result<Vec<R>, StoreError>
    where
        R: for<'f> DeserializeRow<'f, 'f>,
    {
        let result = self.exec(stmt, values).await?;
        let rows = result.into_rows_result().map_err(backend)?;
        let typed = rows.rows::<R>().map_err(backend)?;
        typed.collect::<Result<Vec<R>, _>>().map_err(backend)
    }

    /// The first row `stmt` returns, if any.
    pub async fn first<R>(&self, stmt: Stmt, values: impl SerializeRow) -> Result<Option<R>, StoreError>
    where
        R: for<'f> DeserializeRow<'f, 'f>,
    {
        Ok(self.rows::<R>(stmt, values).await?.into_iter().next())
    }

    /// Runs a lightweight transaction: whether it applied, and when it did
    /// not, the current values the server sent back (after `[applied]`).
    pub async fn lwt(
        &self,
        stmt: Stmt,
        values: impl SerializeRow,
    ) -> Result<(bool, Vec<Option<CqlValue>>), StoreError> {
        applied_of(self.exec(stmt, values).await?)
    }

    /// Whether a lightweight transaction applied.
    pub async fn applied(&self, stmt: Stmt, values: impl SerializeRow) -> Result<bool, StoreError> {
        Ok(self.lwt(stmt, values).await?.0)
    }

    /// Whether a lightweight transaction applied, `None` when its outcome
    /// is unknown: the database timed out on its Paxos round (contention on
    /// one partition), and the write may or may not have landed.
    pub async fn applied_or_unknown(&self, stmt: Stmt, values: impl SerializeRow) -> Result<Option<bool>, StoreError> {
        Ok(self.lwt_or_unknown(stmt, values).await?.map(|(applied, _)| applied))
    }

    /// [`Cql::lwt`], `None` when its outcome is unknown (see
    /// [`Cql::applied_or_unknown`]).
    pub async fn lwt_or_unknown(
        &self,
        stmt: Stmt,
        values: impl SerializeRow,
    ) -> Result<Option<(bool, Vec<Option<CqlValue>>)>, StoreError> {
        match self.lwt(stmt, values).await {
            Ok((true, _)) if self.lost_outcome_of == Some(stmt.label()) => Ok(None),
            Ok(answer) => Ok(Some(answer)),
            Err(e) if is_cas_timeout(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Runs a lightweight transaction whose write carries this request's
    /// own mark (an id only it writes), resolving an unknown outcome (a
    /// Paxos round that timed out) by running it again: a later round
    /// finishes the one it finds, so the answer is then definite, and when
    /// it is "not applied", `ours` tells from the current values whether
    /// the write that landed was this request's. Fails only if the outcome
    /// stays unknown [`limits::SCYLLA_UNKNOWN_OUTCOME_ATTEMPTS`] times.
    pub async fn lwt_resolved<V: SerializeRow + Clone>(
        &self,
        stmt: Stmt,
        values: V,
        ours: impl Fn(&[Option<CqlValue>]) -> bool,
    ) -> Result<(bool, Vec<Option<CqlValue>>), StoreError> {
        let mut unknown = false;
        for _ in 0..limits::SCYLLA_UNKNOWN_OUTCOME_ATTEMPTS {
            match self.lwt_or_unknown(stmt, values.clone()).await? {
                Some((false, current)) if unknown && ours(&current) => return Ok((true, current)),
                Some(answer) => return Ok(answer),
                None => unknown = true,
            }
        }
        Err(backend(UnknownOutcome(stmt.label())))
    }

    /// Runs `parts` as one batch of `kind` (a single part runs alone).
    pub async fn batch(&self, kind: BatchType, parts: Vec<Part>) -> Result<QueryResult, StoreError> {
        let Some(first) = parts.first().map(|(s, _)| *s) else {
            return self.exec(Stmt::Ping, ()).await;
        };
        if parts.len() == 1 && kind != BatchType::Logged {
            let (stmt, values) = parts.into_iter().next().ok_or_else(|| corrupt("batch", "empty"))?;
            return self.exec(stmt, values).await;
        }
        let mut batch = Batch::new(kind);
        let mut values = Vec::with_capacity(parts.len());
        for (stmt, v) in parts {
            batch.append_statement(self.statement(stmt)?.clone());
            values.push(v);
        }
        let started = Instant::now();
        let result = self.session.batch(&batch, values).await;
        self.metrics
            .record(first, Sent::Batch, started.elapsed(), result.is_err());
        result.map_err(backend)
    }

    /// Runs `parts` as one conditional batch (one partition): whether it
    /// applied, with the current values when it did not.
    pub async fn batch_lwt(&self, parts: Vec<Part>) -> Result<(bool, Vec<Option<CqlValue>>), StoreError> {
        applied_of(self.batch(BatchType::Logged, parts).await?)
    }
}

/// Reads `[applied]` (and the values after it) from an LWT's answer.
fn applied_of(result: QueryResult) -> Result<(bool, Vec<Option<CqlValue>>), StoreError> {
    let rows = result.into_rows_result().map_err(backend)?;
    let row = rows
        .maybe_first_row::<Row>()
        .map_err(backend)?
        .ok_or_else(|| corrupt("lwt", "no [applied] row"))?;
    let mut columns = row.columns.into_iter();
    match columns.next() {
        Some(Some(CqlValue::Boolean(applied))) => Ok((applied, columns.collect())),
        _ => Err(corrupt("lwt", "no [applied] column")),
    }
}

#[cfg(test)]
mod tests {
    use scylla::statement::Consistency;

    use super::*;

    fn write_timeout(write_type: WriteType) -> StoreError {
        let timeout = DbError::WriteTimeout {
            consistency: Consistency::LocalSerial,
            received: 0,
            required: 1,
            write_type,
        };
        backend(ExecutionError::LastAttemptError(RequestAttemptError::DbError(
            timeout,
            "Operation timed out".to_string(),
        )))
    }

    /// Goal: only a lightweight transaction's write timeout counts as an
    /// unknown outcome; every other error stays an error.
    #[test]
    fn only_a_cas_write_timeout_is_an_unknown_outcome() {
        assert!(is_cas_timeout(&write_timeout(WriteType::Cas)));
        assert!(!is_cas_timeout(&write_timeout(WriteType::Simple)));
        assert!(!is_cas_timeout(&corrupt("users", "bad")));
    }
}
