-- The new scores of a batch of changes ($1 models, $2 complexities, $3 scores, $4 sources:
-- 'learned' or 'operator', $5 reasons), distinct cells: a cell seen for the first time enters
-- with the score as its prior; an operator's score becomes the cell's prior, a learned one does
-- not move it.
INSERT INTO centralcloud.model_complexity_scores AS s
       (model_name, complexity_level, score, prior_score, change_source, change_reason)
SELECT c.model, c.complexity, c.score, c.score, c.source, c.reason
  FROM unnest($1::text[], $2::text[], $3::float8[], $4::text[], $5::text[])
       AS c(model, complexity, score, source, reason)
ON CONFLICT (model_name, complexity_level) DO UPDATE
   SET score = EXCLUDED.score, change_source = EXCLUDED.change_source,
       change_reason = EXCLUDED.change_reason, changed_at = now(),
       prior_score = CASE WHEN EXCLUDED.change_source = 'operator' THEN EXCLUDED.score
                          ELSE s.prior_score END
