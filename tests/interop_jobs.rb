# Ruby Resque jobs for the interoperability tests (tests/test_interop_*.py).
# Each records what it did on <namespace>:e2e:log, in tests/e2e_jobs.py's format.
module InteropLog
  def self.record(job, event, fields = {})
    entry = { "job" => job, "event" => event, "pid" => Process.pid, "lang" => "ruby" }
    Resque.redis.rpush("e2e:log", Resque.encode(entry.merge(fields)))
  end
end

# php-resque's README job: one argument, the data.
class My_Job
  def self.perform(*args)
    InteropLog.record("My_Job", "perform", "args" => args)
  end
end

# Ruby Resque's README job: positional arguments.
class Archive
  def self.perform(number, name)
    InteropLog.record("Archive", "perform", "number" => number, "name" => name)
  end
end

class RubyBoom
  def self.perform(*args)
    InteropLog.record("RubyBoom", "perform", "args" => args)
    raise "ruby boom"
  end
end

# Records "started", then waits (at most 60 s) until e2e:release:<tag> exists.
class RubyBlock
  def self.perform(tag)
    InteropLog.record("RubyBlock", "started", "tag" => tag)
    deadline = Time.now + 60
    sleep 0.01 until Resque.redis.exists?("e2e:release:#{tag}") || Time.now > deadline
  end
end
