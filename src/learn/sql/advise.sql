-- Sends each open episode of a chunk's cells that has not been advised its advisory, to its
-- instance's own queue only, once: an instance that is not subscribed gets nothing (advised_at
-- stays NULL) until it subscribes while the episode lasts.
WITH due AS (
    SELECT e.id, s.queue_name, e.advisory
      FROM unnest($1::text[], $2::text[]) AS c(model, complexity)
      JOIN centralcloud.instance_anomaly_episodes e
        ON e.model_name = c.model AND e.complexity_level = c.complexity
      JOIN centralcloud.score_subscriptions s ON s.instance_id = e.instance_id
     WHERE e.cleared_at IS NULL AND e.advised_at IS NULL
       AND EXISTS (SELECT 1 FROM pgmq.meta m WHERE m.queue_name = s.queue_name)
     ORDER BY e.id),
sent AS (
    SELECT d.id, d.queue_name, (SELECT pgmq.send(d.queue_name, d.advisory)) AS msg_id FROM due d)
UPDATE centralcloud.instance_anomaly_episodes e
   SET advised_at = now(), advised_queue = sent.queue_name
  FROM sent
 WHERE e.id = sent.id AND sent.msg_id IS NOT NULL
