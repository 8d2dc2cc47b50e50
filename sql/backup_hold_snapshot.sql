-- First statement of a run's backup transaction (REPEATABLE READ): fixes the snapshot the
-- backup will copy, and keeps a server-side idle timeout from ending the transaction while
-- the run works.
SELECT set_config('idle_in_transaction_session_timeout', '0', true);
