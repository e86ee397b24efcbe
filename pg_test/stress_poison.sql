-- The poison of pg_test/stress.sh: processing fails, unexpectedly, for one message.
\set ON_ERROR_STOP 1
CREATE FUNCTION test.explode() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.instance_id = 'poison' THEN
        RAISE EXCEPTION 'simulated failure for msg_id %', NEW.msg_id;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER explode BEFORE INSERT ON centralcloud.routing_records
    FOR EACH ROW EXECUTE FUNCTION test.explode();
