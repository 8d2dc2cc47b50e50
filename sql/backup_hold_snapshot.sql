-- First statement of a run's backup transaction (REPEATABLE READ): fixes the snapshot the
-- backup will copy, keeps a server-side idle timeout from ending the transaction while the
-- run works, and says whether the snapshot precedes every change of run $1: each batch
-- journals in the transaction that writes its rows, so a snapshot that sees none of the run's
-- journal holds none of its changes, and is the table as it was before the run.
SELECT set_config('idle_in_transaction_session_timeout', '0', true) IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM loader.journal_inserts WHERE run_id = $1)
       AND NOT EXISTS (SELECT 1 FROM loader.journal_updates WHERE run_id = $1);
