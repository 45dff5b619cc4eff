# The app's site configuration, read by the ERB files on the OOD web node.
#
# Looked up in this order (the app's contract, README "Site configuration"):
#   1. the file named by MLFLOW_OOD_CONFIG in the dashboard's environment;
#   2. /etc/ood/config/apps/mlflow/site.yml;
#   3. nothing: site.yml.example, which also supplies every key a site leaves out.
# A wrong key or value raises SiteConfig::Error, whose message the dashboard
# shows on the form page instead of a stack trace.
require "ipaddr"
require "yaml"

module MlflowApp
  class SiteConfig
    class Error < StandardError; end

    APP_ROOT = File.expand_path("..", __dir__)
    EXAMPLE = File.join(APP_ROOT, "site.yml.example")
    SYSTEM_FILE = "/etc/ood/config/apps/mlflow/site.yml"
    RESOURCE_KEYS = %w[hours cores memory_gb].freeze
    # The site settings the job reads (template/settings.json.erb), by their flat names: a nested key joined
    # with "_" (examples.store is examples_store). Each is a field of ood_mlflow/settings.py's Settings.
    JOB_SETTINGS = %w[proxy start_timeout trusted_proxies artifact_roots default_view examples_store
                      postgresql_allowed confinement node_local_hint slurm_runs_enabled].freeze

    attr_reader :source

    def self.load(env = ENV)
      path = locate(env)
      new(path ? read(path) : {}, source: path || EXAMPLE)
    end

    def self.locate(env)
      given = env["MLFLOW_OOD_CONFIG"].to_s
      return given unless given.empty?
      File.exist?(SYSTEM_FILE) ? SYSTEM_FILE : nil
    end

    def self.read(path)
      data = YAML.safe_load(File.read(path)) || {}
      raise Error, "ERROR: #{path} must hold a YAML mapping of settings" unless data.is_a?(Hash)
      data
    rescue Errno::ENOENT, Errno::EACCES => e
      raise Error, "ERROR: cannot read the MLflow app's site configuration #{path}: #{e.message}"
    rescue Psych::Exception => e
      raise Error, "ERROR: the MLflow app's site configuration #{path} is not valid YAML: #{e.message}"
    end

    def initialize(data, source: EXAMPLE)
      @source = source
      defaults = YAML.safe_load(File.read(EXAMPLE))
      unknown = data.keys - defaults.keys
      fail!("unknown key #{unknown.map(&:to_s).join(', ')} (known keys: #{defaults.keys.join(', ')})") unless unknown.empty?
      @data = defaults.merge(data) do |key, default, given|
        default.is_a?(Hash) && given.is_a?(Hash) ? default.merge(given) : given
      end
      validate!
    end

    def clusters = Array(@data["cluster"])
    def environments = @data["environments"]
    def environment_labels = environments.map { |e| e["label"] }
    def proxy = @data["proxy"]
    def start_timeout = @data["start_timeout"]
    # Partitions as given: a name, or {name, max_hours, max_cores, max_memory_gb}.
    def partitions = @data["partitions"].map { |p| p.is_a?(String) ? { "name" => p } : p }
    def partition_names = partitions.map { |p| p["name"] }
    def account = @data["account"]
    def resource(name) = @data.fetch(name)
    def path_selector = @data["path_selector"]
    def sbatch_args = @data["sbatch_args"]
    def docs_url = @data["docs_url"]
    def trusted_proxies = @data["trusted_proxies"]
    def artifact_roots = @data["artifact_roots"]
    def default_view = @data["default_view"]
    def examples = @data["examples"]
    def postgresql_allowed = @data["postgresql"]["allowed"]
    def confinement = @data["confinement"]
    def node_local_hint = @data["node_local_hint"]
    def slurm_runs_enabled = @data["slurm_runs"]["enabled"]

    # Every setting by its flat name (a nested mapping's keys joined to its own with "_").
    def flat
      @data.flat_map do |key, value|
        value.is_a?(Hash) ? value.map { |inner, v| ["#{key}_#{inner}", v] } : [[key, value]]
      end.to_h
    end

    # What the job gets from the site, unchanged, under the names Settings has.
    def job_settings = flat.slice(*JOB_SETTINGS)

    # A tracking store refused on the form page, before anything is staged: a PostgreSQL URI
    # on a site that does not offer them, or one with a password in it (the dashboard would
    # keep it in the form cache and the staged session). The job checks the same again.
    def check_tracking_uri(value)
      text = value.to_s.strip
      return unless text.match?(/\Apostgresql(\+psycopg2?)?:/i)
      unless postgresql_allowed
        raise Error, "ERROR: this site does not offer PostgreSQL tracking stores in the MLflow app; " \
                     "give a directory or SQLite store, e.g. #{examples["store"]}"
      end
      rest = text.split("://", 2)[1].to_s
      userinfo = rest.include?("@") ? rest[0...rest.rindex("@")] : ""
      query = rest.split("?", 2)[1].to_s
      option = query.split(/[&;]/).any? { |piece| fully_decoded(piece).split("=", 2)[0].strip.casecmp?("password") }
      return unless fully_decoded(userinfo).include?(":") || option
      raise Error, "ERROR: the PostgreSQL tracking URI contains a password, which must never be typed into the " \
                   "form; remove it and put it in ~/.pgpass instead (one line host:port:dbname:user:password, " \
                   "chmod 600 ~/.pgpass)"
    end

    # Percent-decoded until it stops changing: `%70assword`, `password%3D…` and twice-encoded forms all count.
    def fully_decoded(text)
      10.times do
        once = text.gsub(/%[0-9A-Fa-f]{2}/) { |code| code[1..].hex.chr }
        return text if once == text
        text = once
      end
      text
    end

    # The environment a user chose ({"label", "setup"}); the first one for an empty choice.
    # The job's ERB files (before.sh, environment.sh, settings.json) all resolve it here.
    def environment(label)
      return environments.first if label.to_s.empty?
      found = environments.find { |e| e["label"] == label.to_s }
      raise Error, "ERROR: the software environment #{label.inspect} is no longer offered; choose another on the form" unless found
      found
    end

    PARTITION_LIMIT_KEYS = { "hours" => "max_hours", "cores" => "max_cores", "memory_gb" => "max_memory_gb" }.freeze

    # The largest value of a resource on a partition: the site's max, or the partition's if lower.
    def limit(name, partition = nil)
      found = partitions.find { |p| p["name"] == partition.to_s }
      [resource(name)["max"], (found || {})[PARTITION_LIMIT_KEYS.fetch(name)]].compact.min
    end

    # A whole number from a form field, within the site's (and the partition's) limit.
    def whole_number(value, field, name, partition = nil)
      limit = limit(name, partition)
      text = value.to_s.strip
      return resource(name)["default"] if text.empty?
      number = Integer(text, 10) rescue nil
      return number if number && number >= 1 && number <= limit
      raise Error, "ERROR: #{field} must be a whole number from 1 to #{limit}, not #{text.inspect}"
    end

    private

    def fail!(message)
      raise Error, "ERROR: the MLflow app's site configuration #{@source}: #{message}"
    end

    def validate!
      check_strings("cluster", clusters, allow_empty: false)
      validate_environments
      fail!("proxy must be rnode or node, not #{proxy.inspect}") unless %w[rnode node].include?(proxy)
      fail!("start_timeout must be a number of seconds from 10 to 3600") unless start_timeout.is_a?(Integer) && start_timeout.between?(10, 3600)
      validate_partitions
      fail!("account must be text, auto or none, not #{account.inspect}") unless %w[text auto none].include?(account)
      RESOURCE_KEYS.each { |name| validate_resource(name) }
      validate_path_selector
      check_strings("sbatch_args", sbatch_args)
      fail!("docs_url must be a URL or \"\"") unless docs_url.is_a?(String) && !docs_url.include?("\n")
      fail!("default_view must be training or genai, not #{default_view.inspect}") unless %w[training genai].include?(default_view)
      ok = examples.is_a?(Hash) && (examples.keys - %w[project store]).empty? &&
           examples.values.all? { |v| v.is_a?(String) && !v.include?("\n") } && examples["store"].to_s.start_with?("/")
      fail!("examples must have project (a name) and store (an absolute path)") unless ok
      validate_trusted_proxies
      ok = artifact_roots.is_a?(Array) && artifact_roots.all? { |r| r.is_a?(String) && r.start_with?("/") && !r.include?("\n") }
      fail!("artifact_roots must be a list of absolute paths") unless ok
      pg = @data["postgresql"]
      ok = pg.is_a?(Hash) && (pg.keys - %w[allowed]).empty? && [true, false].include?(pg["allowed"])
      fail!("postgresql must be a mapping with allowed: true or false") unless ok
      fail!("confinement must be auto or required, not #{confinement.inspect}") unless %w[auto required].include?(confinement)
      fail!("node_local_hint must be one line of text") unless node_local_hint.is_a?(String) && !node_local_hint.include?("\n")
      sr = @data["slurm_runs"]
      ok = sr.is_a?(Hash) && (sr.keys - %w[enabled]).empty? && [true, false].include?(sr["enabled"])
      fail!("slurm_runs must be a mapping with enabled: true or false") unless ok
    end

    def validate_environments
      fail!("environments must be a non-empty list") unless environments.is_a?(Array) && !environments.empty?
      environments.each_with_index do |env, i|
        fail!("environments[#{i}] must be a mapping with label and setup") unless env.is_a?(Hash)
        extra = env.keys - %w[label setup]
        fail!("environments[#{i}] has unknown key #{extra.join(', ')}") unless extra.empty?
        label = env["label"]
        fail!("environments[#{i}] needs a one-line label") unless label.is_a?(String) && !label.strip.empty? && !label.include?("\n")
        fail!("environments[#{i}] (#{label}) needs setup text (it may be empty)") unless env["setup"].is_a?(String) || env["setup"].nil?
        env["setup"] = env["setup"].to_s
      end
      labels = environment_labels
      fail!("environment labels must differ (#{labels.join(', ')})") unless labels.uniq.size == labels.size
    end

    def validate_trusted_proxies
      fail!("trusted_proxies must be a list of addresses or CIDRs") unless trusted_proxies.is_a?(Array)
      trusted_proxies.each do |entry|
        IPAddr.new(entry.to_s)
      rescue IPAddr::Error
        fail!("trusted_proxies: #{entry.inspect} is not an IP address or CIDR (e.g. 10.1.2.3 or 10.1.2.0/24)")
      end
    end

    def validate_partitions
      given = @data["partitions"]
      fail!("partitions must be a list") unless given.is_a?(Array)
      given.each_with_index do |p, i|
        next if p.is_a?(String) && !p.strip.empty?
        ok = p.is_a?(Hash) && p["name"].is_a?(String) && !p["name"].strip.empty? &&
             (p.keys - %w[name] - PARTITION_LIMIT_KEYS.values).empty? &&
             PARTITION_LIMIT_KEYS.values.all? { |k| p[k].nil? || (p[k].is_a?(Integer) && p[k] >= 1) }
        fail!("partitions[#{i}] must be a name or a mapping of name, max_hours, max_cores, max_memory_gb") unless ok
      end
    end

    def validate_resource(name)
      res = resource(name)
      ok = res.is_a?(Hash) && (res.keys - %w[default max]).empty? &&
           [res["default"], res["max"]].all? { |v| v.is_a?(Integer) && v >= 1 } && res["default"] <= res["max"]
      fail!("#{name} must have whole-number default and max with 1 <= default <= max") unless ok
    end

    def validate_path_selector
      ps = path_selector
      ok = ps.is_a?(Hash) && (ps.keys - %w[directory favorites]).empty? && ps["directory"].is_a?(String) &&
           (ps["favorites"] == false || (ps["favorites"].is_a?(Array) && ps["favorites"].all? { |f| f.is_a?(String) }))
      fail!("path_selector must have directory (a path or \"\") and favorites (false or a list of paths)") unless ok
    end

    def check_strings(key, value, allow_empty: true)
      ok = value.is_a?(Array) && value.all? { |v| v.is_a?(String) && !v.strip.empty? } && (allow_empty || !value.empty?)
      fail!("#{key} must be a list of names#{allow_empty ? '' : ' (at least one)'}") unless ok
    end
  end
end
