# Builds the synthetic show stat answers of older and newer HAProxy
# versions from their documented headers.
v15 = "pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime".split(",")
v17 = v15 + "agent_status,agent_code,agent_duration,check_desc,agent_desc,check_rise,check_fall,check_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo,conn_rate,conn_rate_max,conn_tot,intercepted,dcon,dses".split(",")
v3 = v17 + "wrew,connect,reuse,cache_lookups,cache_hits,srv_icur,src_ilim,qtime_max,ctime_max,rtime_max,ttime_max,eint,idle_conn_cur,safe_conn_cur,used_conn_cur,need_conn_est,uweight,agg_server_status,agg_server_check_status,agg_check_status,srid,sess_other,h1sess,h2sess,h3sess,req_other,h1req,h2req,h3req,proto,priv_idle_cur,reqbin,reqbout,resbin,resbout,-,ssl_sess,ssl_reused_sess,ssl_failed_handshake,h2_headers_rcvd,h2_data_rcvd,h2_settings_rcvd,h2_rst_stream_rcvd,h2_goaway_rcvd,h2_detected_conn_protocol_errors,h2_detected_strm_protocol_errors,h2_rst_stream_resp,h2_goaway_resp,h2_open_connections,h2_backend_open_streams,h2_total_connections,h2_backend_total_streams,h1_open_connections,h1_open_streams,h1_total_connections,h1_total_streams,h1_bytes_in,h1_bytes_out,h1_spliced_bytes_in,h1_spliced_bytes_out".split(",")
assert len(v15) == 62 and len(v17) == 83, (len(v15), len(v17))

def enc(v):
    v = str(v)
    if any(c in v for c in ',"\n'):
        return '"' + v.replace('"', '""') + '"'
    return v

def answer(cols, rows):
    out = "# " + ",".join(cols) + ",\n"
    for r in rows:
        out += ",".join(enc(r.get(c, "")) for c in cols) + ",\n"
    return out + "\n"

def fe(px, status, mode="http", http=True, **kw):
    r = dict(pxname=px, svname="FRONTEND", scur=1, smax=5, slim=2000, stot=42, bin=1234, bout=5678, dreq=0, dresp=0, ereq=0, status=status, pid=1, iid=2, sid=0, type=0, rate=0, rate_lim=0, rate_max=3, mode=mode)
    if http:
        r.update(hrsp_1xx=0, hrsp_2xx=40, hrsp_3xx=0, hrsp_4xx=2, hrsp_5xx=0, hrsp_other=0, req_rate=0, req_rate_max=3, req_tot=42)
    r.update(kw); return r

def be(px, status, mode="http", http=True, **kw):
    r = dict(pxname=px, svname="BACKEND", qcur=0, qmax=0, scur=0, smax=2, slim=200, stot=40, bin=1000, bout=5000, dreq=0, dresp=0, econ=0, eresp=0, wretr=0, wredis=0, status=status, weight=2, act=2, bck=0, chkdown=1, lastchg=300, downtime=10, pid=1, iid=3, sid=0, lbtot=40, type=1, rate=0, rate_max=2, cli_abrt=1, srv_abrt=0, lastsess=5, qtime=0, ctime=1, rtime=2, ttime=3, mode=mode, algo="roundrobin")
    if http:
        r.update(hrsp_1xx=0, hrsp_2xx=38, hrsp_3xx=0, hrsp_4xx=2, hrsp_5xx=0, hrsp_other=0, req_tot=40)
    r.update(kw); return r

def sv(px, name, sid, status, mode="http", http=True, check=True, **kw):
    r = dict(pxname=px, svname=name, qcur=0, qmax=0, scur=0, smax=1, stot=20, bin=500, bout=2500, dresp=0, econ=0, eresp=0, wretr=0, wredis=0, status=status, weight=1, act=1, bck=0, lastchg=300, pid=1, iid=3, sid=sid, lbtot=20, type=2, rate=0, rate_max=1, cli_abrt=0, srv_abrt=0, lastsess=-1, qtime=0, ctime=1, rtime=2, ttime=3, addr="10.0.0.%d:80" % sid, mode=mode)
    if check:
        r.update(chkfail=0, chkdown=0, downtime=0, check_status="L7OK", check_code=200, check_duration=1, last_chk="HTTP status check returned code <3C>200<3E>", check_desc="Layer7 check passed", check_rise=2, check_fall=3, check_health=4)
    if http:
        r.update(hrsp_1xx=0, hrsp_2xx=19, hrsp_3xx=0, hrsp_4xx=1, hrsp_5xx=0, hrsp_other=0, req_tot=20)
    r.update(kw); return r

rows15 = [
    fe("www.example-fe", "OPEN"),
    fe("full-fe", "FULL", iid=4),
    fe("stopped:fe", "STOP", iid=5),
    sv("app.v1", "web-1", 1, "UP"),
    sv("app.v1", "web-2", 2, "DOWN", chkfail=3, chkdown=1, downtime=120, check_status="L4CON", check_code="", last_chk="Connection refused"),
    sv("app.v1", "web:3", 3, "MAINT (via app.v1/web-1)", tracked="app.v1/web-1", check=False),
    sv("app.v1", "web-4", 4, "NOLB"),
    sv("app.v1", "web-5", 5, "no check", check=False),
    sv("app.v1", "web-6", 6, "UP 1/3"),
    sv("app.v1", "web-7", 7, "DOWN 1/2"),
    sv("app.v1", "web-8", 8, "DRAIN"),
    be("app.v1", "UP"),
    fe("db_tcp-1", "OPEN", mode="tcp", http=False, iid=6),
    sv("db_tcp-1", "pg.1", 1, "UP", mode="tcp", http=False, iid=6),
    be("db_tcp-1", "DOWN", mode="tcp", http=False, iid=6),
    dict(pxname="db_tcp-1", svname="sock-1", scur=0, smax=0, slim=2000, stot=0, bin=0, bout=0, status="WAITING", pid=1, iid=6, sid=1, type=3),
]
for r in rows15:
    for k in list(r):
        if k not in v15: del r[k]
open("haproxy-1.5.csv", "w").write(answer(v15, rows15))

rows17 = [
    fe("www.example-fe", "OPEN", conn_rate=1, conn_rate_max=4, conn_tot=50, intercepted=0, dcon=0, dses=0),
    sv("app.v1", "web-1", 1, "UP", agent_status="L7OK", agent_code=200, agent_duration=0, agent_desc="Layer7 check passed, agent says \"ready\"", agent_rise=1, agent_fall=1, agent_health=1, cookie="w1"),
    sv("app.v1", "web-2", 2, "DOWN (agent)", check_desc="Layer7 wrong status, code: 503, info: \"Service Unavailable\""),
    sv("app.v1", "web-3", 3, "DRAIN (agent)", last_chk="check, with a comma\nand a newline"),
    sv("app.v1", "web-4", 4, "MAINT"),
    sv("app.v1", "web-5", 5, "no check", check=False),
    be("app.v1", "UP"),
]
open("haproxy-1.7.csv", "w").write(answer(v17, rows17))

rows3 = [
    fe("www.example-fe", "OPEN", sess_other=0, h1sess=40, h2sess=2, h3sess=0, req_other=0, h1req=40, h2req=2, h3req=0, proto="", **{"ssl_sess": 0, "h1_bytes_in": 900}),
    fe("paused-fe", "PAUSED", iid=7),
    sv("app.v1", "web-1", 1, "UP", srid=1, uweight=1, proto="h2", priv_idle_cur=0, reqbin=100, reqbout=100, resbin=200, resbout=200),
    sv("app.v1", "web-2", 2, "MAINT (resolution)", check=False),
    sv("app.v1", "web-3", 3, "NOLB 2/3"),
    sv("app.v1", "web-4", 4, "DRAIN 1/2"),
    sv("app.v1", "web-5", 5, "SOMETHING-NEW"),
    be("app.v1", "UP", agg_server_status=1, agg_server_check_status=1, agg_check_status=1),
    dict(pxname="www.example-fe", svname="sock-1", scur=0, smax=0, slim=2000, stot=0, bin=0, bout=0, status="FULL", pid=1, iid=2, sid=1, type=3),
]
open("haproxy-3.x.csv", "w").write(answer(v3, rows3))
print(len(v15), len(v17), len(v3))
