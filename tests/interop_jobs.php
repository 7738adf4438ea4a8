<?php
// php-resque jobs for the interoperability tests (tests/test_interop_*.py).
// Each records what it did on <prefix>:e2e:log, in tests/e2e_jobs.py's format.
function interop_record($job, $event, $fields)
{
    $entry = array('job' => $job, 'event' => $event, 'pid' => getmypid(), 'lang' => 'php');
    Resque::redis()->rpush('e2e:log', json_encode(array_merge($entry, $fields)));
}

// php-resque's README job: $this->args is the enqueued data.
class My_Job
{
    public function perform()
    {
        interop_record('My_Job', 'perform', array('args' => $this->args, 'job_id' => isset($this->job->payload['id']) ? $this->job->payload['id'] : null));
    }
}

class PhpBoom
{
    public function perform()
    {
        interop_record('PhpBoom', 'perform', array('args' => $this->args));
        throw new Exception('php boom');
    }
}

// Records "started", then waits (at most 60 s) until e2e:release:<tag> exists.
class PhpBlock
{
    public function perform()
    {
        $tag = $this->args['tag'];
        interop_record('PhpBlock', 'started', array('tag' => $tag));
        $deadline = microtime(true) + 60;
        while (!Resque::redis()->exists('e2e:release:' . $tag) && microtime(true) < $deadline) {
            usleep(10000);
        }
    }
}
