# Renders the app's ERB files the way the OOD dashboard does
# (OOD's batch-connect rendering), with Debian's
# Ruby, ERB, Psych and Redcarpet. Written from that description, not from OOD.
#
#   ruby render.rb form APP_ROOT                     -> JSON of form.yml.erb after YAML.safe_load
#   ruby render.rb submit APP_ROOT REQUEST.json      -> JSON of submit.yml.erb after YAML.safe_load
#   ruby render.rb stage APP_ROOT REQUEST.json       -> renders template/**/*.erb into staged_root
#   ruby render.rb view APP_ROOT REQUEST.json        -> HTML of view.html.erb after Markdown
#   ruby render.rb info|completed APP_ROOT REQUEST.json -> HTML of that card panel after Markdown
#   ruby render.rb markdown APP_ROOT REQUEST.json     -> {"text": ...} through OOD's Markdown (form help)
#
# REQUEST.json: {"context": {id: value}, "staged_root": path, "session": {...}}.
# Errors go to stderr with exit status 3, as the dashboard would show them.
require "erb"
require "json"
require "yaml"
require "ostruct"
require "pathname"
require "redcarpet"

def erb_for(path, with_filename:)
  erb = ERB.new(File.read(path), trim_mode: "-")
  erb.filename = path.to_s if with_filename # OOD sets it for form/submit only
  erb
end

# OOD's OodAppkit.markdown: Redcarpet HTML with these extensions.
def markdown(text)
  Redcarpet::Markdown.new(Redcarpet::Render::HTML, autolink: true, tables: true,
                          strikethrough: true, fenced_code_blocks: true,
                          no_intra_emphasis: true).render(text)
end

# The session context in template ERB: form values as Strings; unknown ids raise.
class FakeSessionContext
  def initialize(values) = @values = values.transform_values(&:to_s)
  def method_missing(name, *args) = @values.key?(name.to_s) ? @values[name.to_s] : super
  def respond_to_missing?(name, priv = false) = @values.key?(name.to_s) || super
end

# The parts of BatchConnect::Session the card panels and templates use.
class FakeSession
  attr_reader :id, :staged_root, :cluster_id, :token, :title, :created_at, :job_id
  def initialize(req)
    s = req.fetch("session", {})
    @id = s.fetch("id", "00000000-0000-0000-0000-000000000000")
    @staged_root = Pathname.new(req.fetch("staged_root"))
    @cluster_id = s.fetch("cluster_id", "cluster")
    @token = s.fetch("token", "sys/mlflow")
    @title = s.fetch("title", "MLflow")
    @created_at = s.fetch("created_at", 0)
    @job_id = s["job_id"]
    @status = s.fetch("status", "completed")
  end
  def user_context = (JSON.parse(staged_root.join("user_defined_context.json").read) rescue {})
  def output_file = staged_root.join("output.log")
  def connect_file = staged_root.join("connection.yml")
  def connect = OpenStruct.new(YAML.safe_load(connect_file.read))
  def completed? = @status == "completed"
  def running? = @status == "running"
  def starting? = @status == "starting"
  def queued? = @status == "queued"
  def get_binding = binding
end

TemplateBinding = Struct.new(:session, :context) do
  def get_binding = binding
end

# The view's binding: self is the connection OpenStruct, and the partial's locals
# (view, connect, session) are visible because the binding is made in a block.
def view_binding(view, connect, session)
  connect.instance_eval { binding }
end

mode, app_root, request_path = ARGV
app = Pathname.new(app_root)
req = request_path ? JSON.parse(File.read(request_path)) : {}
begin
  case mode
  when "form"
    puts JSON.generate(YAML.safe_load(erb_for(app.join("form.yml.erb"), with_filename: true).result(nil)).to_h)
  when "submit"
    ctx = OpenStruct.new(req.fetch("context").merge("staged_root" => Pathname.new(req.fetch("staged_root"))))
    text = erb_for(app.join("submit.yml.erb"), with_filename: true).result(ctx.instance_eval { binding })
    puts JSON.generate(YAML.safe_load(text).to_h)
  when "stage"
    session = FakeSession.new(req)
    bind = TemplateBinding.new(session, FakeSessionContext.new(req.fetch("context"))).get_binding
    root = app.join("template")
    Pathname.glob(root.join("**", "*.erb")).select(&:file?).each do |src|
      out = session.staged_root.join(src.relative_path_from(root)).sub_ext("")
      out.write(erb_for(src, with_filename: false).result(bind))
      out.chmod(src.stat.mode)
    end
  when "view"
    session = FakeSession.new(req)
    connect = session.connect
    text = erb_for(app.join("view.html.erb"), with_filename: false).result(view_binding(nil, connect, session))
    puts markdown(text)
  when "info", "completed"
    session = FakeSession.new(req)
    puts markdown(erb_for(app.join("#{mode}.html.erb"), with_filename: false).result(session.get_binding))
  when "markdown"
    puts markdown(req.fetch("text"))
  else
    abort "usage: render.rb form|submit|stage|view|info|completed|markdown APP_ROOT [REQUEST.json]"
  end
rescue StandardError, ScriptError => e
  warn "#{e.class}: #{e.message}"
  exit 3
end
